//! SIGINT/SIGTERM → graceful shutdown; a second one → immediate stop.
//!
//! Owns: the process's handlers for the two signals while a server runs
//! (restored when dropped), a self-pipe, and the thread that turns a byte on
//! it into a call on a [`ShutdownHandle`]. Must never: do anything in the
//! handler but write(2), which is async-signal-safe. Unix only.

use super::shutdown::ShutdownHandle;
use std::io;
use std::sync::atomic::{AtomicI32, Ordering};

static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(_: libc::c_int) {
    let fd = PIPE_WRITE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is a local.
        unsafe { libc::write(fd, &byte as *const u8 as *const libc::c_void, 1) };
    }
}

/// Restores the previous handlers and stops the watcher when dropped.
pub(crate) struct Installed {
    old: [libc::sigaction; 2],
    write_fd: libc::c_int,
    watcher: Option<std::thread::JoinHandle<()>>,
}

const SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

pub(crate) fn install(handle: ShutdownHandle) -> io::Result<Installed> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe writes two descriptors into the array we own.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let (read_fd, write_fd) = (fds[0], fds[1]);
    PIPE_WRITE.store(write_fd, Ordering::Relaxed);
    let watcher = std::thread::Builder::new().name("solo-signals".into()).spawn(move || {
        let mut count = 0;
        let mut byte = 0u8;
        loop {
            // SAFETY: reads one byte into a local from a descriptor this
            // thread owns.
            let n = unsafe { libc::read(read_fd, &mut byte as *mut u8 as *mut libc::c_void, 1) };
            if n == 1 && byte == 1 {
                count += 1;
                if count == 1 {
                    handle.shutdown();
                } else {
                    handle.stop_now();
                }
            } else if n == 1 || (n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted) {
                if n == 1 {
                    break; // the stop byte
                }
            } else {
                break;
            }
        }
        // SAFETY: closing the descriptor this thread owns, once.
        unsafe { libc::close(read_fd) };
    })?;
    // SAFETY: an all-zero sigaction is a valid "no handler, no flags"
    // value, filled in before use; sigaction reads `new` and writes `old`.
    let old = unsafe {
        let mut new: libc::sigaction = std::mem::zeroed();
        new.sa_sigaction = on_signal as *const () as libc::sighandler_t;
        new.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut new.sa_mask);
        let mut old: [libc::sigaction; 2] = std::mem::zeroed();
        for (i, sig) in SIGNALS.iter().enumerate() {
            libc::sigaction(*sig, &new, &mut old[i]);
        }
        old
    };
    Ok(Installed {
        old,
        write_fd,
        watcher: Some(watcher),
    })
}

impl Drop for Installed {
    fn drop(&mut self) {
        // SAFETY: restores the handlers saved at install; then writes the
        // stop byte and closes our write end, once.
        unsafe {
            for (i, sig) in SIGNALS.iter().enumerate() {
                libc::sigaction(*sig, &self.old[i], std::ptr::null_mut());
            }
            PIPE_WRITE.store(-1, Ordering::Relaxed);
            let stop = 2u8;
            libc::write(self.write_fd, &stop as *const u8 as *const libc::c_void, 1);
            libc::close(self.write_fd);
        }
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
    }
}
