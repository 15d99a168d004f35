//! The uring backend's offset operations (`spate bench --io uring`): one ring per
//! worker, one operation in flight per buffer.
//!
//! This half drives the ring itself (the `io-uring` crate) instead of going through
//! tokio-uring as whole-file reads do: a benchmark must cost what fio's io_uring engine
//! costs per operation. tokio-uring submits, then sleeps in `epoll_wait` until the
//! ring's eventfd fires: two system calls and a wakeup per completion. At queue depth 1
//! that added about 9 µs to every 4 KiB direct read here (57 µs against fio's 48 µs,
//! 0.87× fio's IOPS). Here the calls are fio's own: one `io_uring_enter` per entry to
//! submit it, and a second only when no completion is ready to reap.

use std::io;
use std::os::unix::io::AsRawFd;
use std::time::Instant;

use io_uring::{IoUring, opcode, squeue, types};

use crate::read::buffer::AlignedBuf;
use crate::read::ops::{Dir, Op, OpRecorder, OpSource, OpsWorker};

/// Runs every worker on a ring of its own; returns one recorder per worker, or why a
/// ring could not be set up.
pub fn run<S: OpSource, R: OpRecorder>(
    file: &std::fs::File,
    workers: Vec<OpsWorker<S>>,
    new_recorder: &(dyn Fn() -> R + Sync),
) -> io::Result<Vec<R>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = workers
            .into_iter()
            .map(|worker| scope.spawn(move || run_ring(file, worker, new_recorder())))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("a ring thread panicked")))
            })
            .collect()
    })
}

/// One buffer and the operation it is lent to, if any.
struct Slot {
    buf: AlignedBuf,
    op: Option<(Op, Instant)>,
}

fn run_ring<S: OpSource, R: OpRecorder>(
    file: &std::fs::File,
    worker: OpsWorker<S>,
    mut recorder: R,
) -> io::Result<R> {
    let OpsWorker {
        mut source,
        buffers,
    } = worker;
    let mut ring = bench_ring(buffers.len())?;
    let fd = types::Fd(file.as_raw_fd());
    let mut slots: Vec<Slot> = buffers
        .into_iter()
        .map(|buf| Slot { buf, op: None })
        .collect();
    let mut idle: Vec<usize> = (0..slots.len()).rev().collect();
    let mut in_flight = 0usize;
    let mut drained = false;
    loop {
        // Refill every idle slot, each entry handed to the kernel as it is made, in a
        // call of its own that waits for nothing (fio's iodepth_batch_submit=1 and its
        // commit: `io_uring_enter(1, 0, GETEVENTS)`): a batch of many would be plugged
        // and reach the device only once all of it is issued. After the first round
        // there is one idle slot at most: the one whose completion was just reaped.
        while !drained && let Some(&index) = idle.last() {
            let slot = &mut slots[index];
            let Some(op) = source.next_op() else {
                drained = true;
                break;
            };
            idle.pop();
            if op.dir == Dir::Write {
                source.prepare_write(&op, &mut slot.buf);
            }
            let entry = entry_for(fd, &op, &mut slot.buf)?.user_data(index as u64);
            let started = Instant::now();
            // SAFETY: the buffer the entry points into belongs to `slots[index]`, which
            // neither moves nor is touched again until its completion is reaped below.
            if unsafe { ring.submission().push(&entry) }.is_err() {
                return Err(io::Error::other("the ring's submission queue is full"));
            }
            slot.op = Some((op, started));
            in_flight += 1;
            commit(&mut ring)?;
        }
        if in_flight == 0 {
            return Ok(recorder);
        }
        // Reap one completion, and refill its slot before looking at the next, as fio
        // with iodepth_batch_complete_min=1 and _max=1. Reaping every ready completion
        // before refilling any (what this did first) left their slots idle while the
        // others were resubmitted one by one: 4 KiB direct reads at Q32 had about 25 in
        // flight, not 32. One already in the queue is taken without a system call;
        // only an empty queue is waited on, in a second call, as fio's getevents does.
        // (Submitting and waiting in one call, what this did before, saved fio's second
        // call at queue depth 1: 1.0 calls per operation against fio's 1.8-2.0, and
        // 4 KiB direct writes at Q1 ran up to 1.11x fio's IOPS; at depth 32 a
        // completion is nearly always there already, one call per operation for both.)
        let Some(cqe) = ring.completion().next() else {
            wait(&mut ring)?;
            continue;
        };
        let index = cqe.user_data() as usize;
        let Some(slot) = slots.get_mut(index) else {
            return Err(io::Error::other("a completion for no operation"));
        };
        let Some((op, started)) = slot.op.take() else {
            return Err(io::Error::other("a completion for no operation"));
        };
        let result = match cqe.result() {
            n if n < 0 => Err(io::Error::from_raw_os_error(-n)),
            n => Ok(n as usize),
        };
        if op.dir == Dir::Read
            && let Ok(n) = result
        {
            // SAFETY: the kernel wrote `n` bytes, at most the `op.len` asked for,
            // which `entry_for` checked against the capacity.
            unsafe { slot.buf.set_len(n) };
        }
        recorder.done(op, started, result);
        idle.push(index);
        in_flight -= 1;
    }
}

/// The submission entry for `op` on `buf`.
fn entry_for(fd: types::Fd, op: &Op, buf: &mut AlignedBuf) -> io::Result<squeue::Entry> {
    if op.dir != Dir::Sync && op.len > buf.capacity() {
        return Err(io::Error::other(format!(
            "an operation of {} bytes on a buffer of {}",
            op.len,
            buf.capacity()
        )));
    }
    // Block sizes are parsed into u32 range long before this; a larger one is a bug.
    let len = u32::try_from(op.len).map_err(io::Error::other)?;
    Ok(match op.dir {
        Dir::Read => opcode::Read::new(fd, buf.as_mut_ptr(), len)
            .offset(op.offset)
            .build(),
        Dir::Write => opcode::Write::new(fd, buf.as_ptr(), len)
            .offset(op.offset)
            .build(),
        // IORING_OP_FSYNC, as fio's io_uring engine issues it.
        Dir::Sync => opcode::Fsync::new(fd).build(),
    })
}

/// `IORING_ENTER_GETEVENTS`: the call also runs the ring's deferred completion work
/// (DEFER_TASKRUN) and, with a minimum, waits for that many completions.
const ENTER_GETEVENTS: u32 = 1;

/// fio's commit: `io_uring_enter(queued, 0, GETEVENTS)`, which hands the queued entries
/// to the kernel and posts the completions that are ready, without waiting for any.
fn commit(ring: &mut IoUring) -> io::Result<()> {
    loop {
        let queued = ring.submission().len() as u32;
        if queued == 0 {
            return Ok(());
        }
        // SAFETY: no argument pointer; the queued entries' buffers are owned by slots
        // that stay put until their completions are reaped.
        match unsafe {
            ring.submitter()
                .enter::<libc::sigset_t>(queued, 0, ENTER_GETEVENTS, None)
        } {
            Ok(_) => continue,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
}

/// fio's getevents with nothing in the completion queue: `io_uring_enter(0, 1,
/// GETEVENTS)`, asleep until one completion is there (again after a signal).
fn wait(ring: &mut IoUring) -> io::Result<()> {
    loop {
        // SAFETY: as in `commit`; nothing is submitted here.
        match unsafe {
            ring.submitter()
                .enter::<libc::sigset_t>(0, 1, ENTER_GETEVENTS, None)
        } {
            Ok(_) => return Ok(()),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
    }
}

/// A ring set up as fio's io_uring engine sets its own: queues of the depth (a power
/// of two), COOP_TASKRUN (completions wait for our next call instead of interrupting
/// us), SINGLE_ISSUER and DEFER_TASKRUN (completion work runs only in the calls that
/// ask for events; the ring is used by the thread that made it). Each flag is dropped
/// where the kernel refuses it, in fio's order.
fn bench_ring(in_flight: usize) -> io::Result<IoUring> {
    let entries = (in_flight as u32).next_power_of_two().clamp(1, 4096);
    let attempts: [fn(&mut io_uring::Builder, u32); 4] = [
        |b, n| {
            b.setup_cqsize(n)
                .setup_coop_taskrun()
                .setup_single_issuer()
                .setup_defer_taskrun();
        },
        |b, n| {
            b.setup_cqsize(n).setup_coop_taskrun();
        },
        |b, n| {
            b.setup_cqsize(n);
        },
        |_, _| {},
    ];
    let mut refused = None;
    for setup in attempts {
        let mut builder = IoUring::builder();
        setup(&mut builder, entries);
        match builder.build(entries) {
            Ok(ring) => return Ok(ring),
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => refused = Some(err),
            Err(err) => return Err(err),
        }
    }
    Err(refused.unwrap_or_else(|| io::Error::other("io_uring refused every setup")))
}
