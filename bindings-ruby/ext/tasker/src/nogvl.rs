//! Running blocking Rust code without Ruby's global VM lock.
//!
//! `rb_thread_call_without_gvl2` runs a function with the GVL released, so
//! other Ruby threads run meanwhile. Unlike `rb_thread_call_without_gvl` it
//! never raises (a raise would unwind through Rust frames): with an interrupt
//! pending it does not call the function at all, and after the call it leaves
//! the interrupt for the caller to handle ([`check_ints`]). Its unblocking
//! function ([`unblock`]) sets a flag the blocking code polls, so Ctrl-C,
//! `Thread#kill` and interpreter exit reach a waiting thread within one poll
//! interval.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

use magnus::{Error, Ruby};

type BlockingFn = unsafe extern "C" fn(*mut c_void) -> *mut c_void;
type UnblockFn = unsafe extern "C" fn(*mut c_void);

extern "C" {
    // ruby/thread.h
    fn rb_thread_call_without_gvl2(
        func: BlockingFn,
        data1: *mut c_void,
        ubf: Option<UnblockFn>,
        data2: *mut c_void,
    ) -> *mut c_void;
}

/// How long a blocking wait sleeps before it looks at the interrupt flag.
pub const POLL: std::time::Duration = std::time::Duration::from_millis(50);

struct Call<F, R> {
    f: Option<F>,
    result: Option<std::thread::Result<R>>,
    interrupted: AtomicBool,
}

unsafe extern "C" fn trampoline<F, R>(data: *mut c_void) -> *mut c_void
where
    F: FnOnce(&AtomicBool) -> R,
{
    // SAFETY: `data` is the `Call` that `without_gvl` keeps alive across the call.
    let call = unsafe { &mut *(data as *mut Call<F, R>) };
    if let Some(f) = call.f.take() {
        let interrupted = &call.interrupted;
        // No panic may unwind into Ruby's C frames.
        call.result = Some(catch_unwind(AssertUnwindSafe(|| f(interrupted))));
    }
    std::ptr::null_mut()
}

unsafe extern "C" fn unblock<F, R>(data: *mut c_void) {
    // SAFETY: as above; only the atomic flag is touched, from another thread.
    let call = unsafe { &*(data as *const Call<F, R>) };
    call.interrupted.store(true, Ordering::SeqCst);
}

/// Runs `f` without the GVL. `f` gets a flag that turns true when Ruby wants
/// the thread back (a signal, `Thread#kill`, exit): long waits should poll it
/// every [`POLL`] and return early. `None` when `f` did not run because an
/// interrupt was already pending. `f` must not touch any Ruby object.
pub fn without_gvl<F, R>(ruby: &Ruby, f: F) -> Result<Option<R>, Error>
where
    F: FnOnce(&AtomicBool) -> R,
{
    let mut call = Call {
        f: Some(f),
        result: None,
        interrupted: AtomicBool::new(false),
    };
    let data = &mut call as *mut Call<F, R> as *mut c_void;
    // SAFETY: called on a Ruby thread holding the GVL (we have `&Ruby`); the
    // trampoline and unblocking function only use `call`, which outlives the call.
    unsafe {
        rb_thread_call_without_gvl2(trampoline::<F, R>, data, Some(unblock::<F, R>), data);
    }
    match call.result {
        None => Ok(None),
        Some(Ok(r)) => Ok(Some(r)),
        Some(Err(panic)) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            Err(Error::new(
                ruby.exception_runtime_error(),
                format!("internal error in the tasker extension: {what}"),
            ))
        }
    }
}

/// Runs `f` without the GVL and, when it did not run (an interrupt was
/// pending), lets Ruby handle that interrupt now (which usually raises), then
/// tries again.
pub fn blocking<F, R>(ruby: &Ruby, f: F) -> Result<R, Error>
where
    F: FnOnce(&AtomicBool) -> R,
{
    let mut f = Some(f);
    loop {
        if let Some(Some(r)) = without_gvl(ruby, |flag| f.take().map(|f| f(flag)))? {
            return Ok(r);
        }
        ruby.thread_check_ints()?;
        if f.is_none() {
            return Err(Error::new(
                ruby.exception_runtime_error(),
                "internal error in the tasker extension: a blocking call was lost",
            ));
        }
    }
}
