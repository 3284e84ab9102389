//! One AF_XDP socket per receive queue: its UMEM (the frames packets are received into and sent
//! from), the fill, completion, RX and TX rings it shares with the kernel, and the free list of
//! frames that are ours.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};

use tracing::debug;

use super::{check, err, owned};

/// Bytes per UMEM frame (one packet each).
pub(super) const FRAME: u64 = 4096;
/// Frames per queue: half can wait in the fill ring, half be on their way out.
const FRAMES: u32 = 2048;
/// Entries per ring.
const RING: u32 = 1024;

/// A mapping that is unmapped on drop.
pub(super) struct Mmap {
    pub(super) ptr: *mut u8,
    pub(super) len: usize,
}

impl Mmap {
    /// Maps `len` bytes of `fd` at `offset`, or anonymous memory when `fd` is -1.
    fn new(fd: RawFd, offset: libc::off_t, len: usize, what: &str) -> io::Result<Mmap> {
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let flags =
            libc::MAP_POPULATE | if fd < 0 { libc::MAP_PRIVATE | libc::MAP_ANONYMOUS } else { libc::MAP_SHARED };
        // SAFETY: a fresh mapping; nothing else refers to it.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, offset) };
        if ptr == libc::MAP_FAILED {
            return Err(err(what, io::Error::last_os_error()));
        }
        Ok(Mmap { ptr: ptr.cast(), len })
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: ptr/len came from mmap and are unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// One ring shared with the kernel: free-running producer and consumer indices, descriptors of
/// type `T`. We are the producer of the fill and TX rings and the consumer of RX and completion.
pub(super) struct Ring<T> {
    _map: Mmap,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    descs: *mut T,
    /// Our copy of the index we own (producer or consumer).
    local: u32,
}

impl<T: Copy> Ring<T> {
    fn map(fd: RawFd, off: &libc::xdp_ring_offset, pgoff: u64, what: &str) -> io::Result<Ring<T>> {
        let len = off.desc as usize + RING as usize * size_of::<T>();
        let map = Mmap::new(fd, pgoff as libc::off_t, len, what)?;
        // SAFETY: the offsets come from XDP_MMAP_OFFSETS and lie inside the mapping.
        unsafe {
            let at = |o: u64| map.ptr.add(o as usize);
            Ok(Ring {
                producer: at(off.producer).cast(),
                consumer: at(off.consumer).cast(),
                flags: at(off.flags).cast(),
                descs: at(off.desc).cast(),
                local: 0,
                _map: map,
            })
        }
    }

    fn index(&self, which: *const AtomicU32) -> &AtomicU32 {
        // SAFETY: the pointer is into our live mapping, and aligned (the kernel lays it out).
        unsafe { &*which }
    }

    fn needs_wakeup(&self) -> bool {
        self.index(self.flags).load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    // Consumer side.
    pub(super) fn ready(&self) -> u32 {
        self.index(self.producer).load(Ordering::Acquire).wrapping_sub(self.local)
    }
    pub(super) fn read(&self, i: u32) -> T {
        // SAFETY: the index is masked into the ring.
        unsafe { self.descs.add((self.local.wrapping_add(i) & (RING - 1)) as usize).read() }
    }
    pub(super) fn release(&mut self, n: u32) {
        self.local = self.local.wrapping_add(n);
        self.index(self.consumer).store(self.local, Ordering::Release);
    }

    // Producer side.
    pub(super) fn room(&self) -> u32 {
        RING - self.local.wrapping_sub(self.index(self.consumer).load(Ordering::Acquire))
    }
    pub(super) fn write(&mut self, i: u32, d: T) {
        // SAFETY: the index is masked into the ring.
        unsafe { self.descs.add((self.local.wrapping_add(i) & (RING - 1)) as usize).write(d) }
    }
    pub(super) fn submit(&mut self, n: u32) {
        self.local = self.local.wrapping_add(n);
        self.index(self.producer).store(self.local, Ordering::Release);
    }
    /// All we produced has been taken by the kernel.
    fn drained(&self) -> bool {
        self.index(self.consumer).load(Ordering::Acquire) == self.local
    }
}

/// One AF_XDP socket on one queue, with its own UMEM.
pub(super) struct Xsk {
    pub(super) fd: OwnedFd,
    pub(super) umem: Mmap,
    fill: Ring<u64>,
    comp: Ring<u64>,
    pub(super) rx: Ring<libc::xdp_desc>,
    pub(super) tx: Ring<libc::xdp_desc>,
    /// Frames (their base addresses) that are ours.
    pub(super) free: Vec<u64>,
    /// Copy mode: the kernel sends what is on the TX ring only inside `sendto`.
    copy: bool,
}

// SAFETY: the rings and UMEM are used by the one thread that owns the Xsk.
unsafe impl Send for Xsk {}

fn setsockopt<T>(fd: RawFd, opt: libc::c_int, v: &T, what: &str) -> io::Result<()> {
    // SAFETY: v is a live value of the size passed.
    let r = unsafe { libc::setsockopt(fd, libc::SOL_XDP, opt, (v as *const T).cast(), size_of::<T>() as u32) };
    check(r, what).map(drop)
}

fn getsockopt<T>(fd: RawFd, opt: libc::c_int, v: &mut T, what: &str) -> io::Result<()> {
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: v is a live value of the size passed.
    let r = unsafe { libc::getsockopt(fd, libc::SOL_XDP, opt, (v as *mut T).cast(), &mut len) };
    check(r, what).map(drop)
}

impl Xsk {
    pub(super) fn open(ifindex: u32, queue: u32) -> io::Result<Xsk> {
        // SAFETY: plain socket(2).
        let fd = owned(check(
            unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) },
            "socket(AF_XDP)",
        )?);
        let raw = fd.as_raw_fd();
        let umem = Mmap::new(-1, 0, (FRAMES as u64 * FRAME) as usize, "mmap(UMEM)")?;
        let reg = libc::xdp_umem_reg {
            addr: umem.ptr as u64,
            len: umem.len as u64,
            chunk_size: FRAME as u32,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(raw, libc::XDP_UMEM_REG, &reg, "XDP_UMEM_REG")?;
        for opt in [libc::XDP_UMEM_FILL_RING, libc::XDP_UMEM_COMPLETION_RING, libc::XDP_RX_RING, libc::XDP_TX_RING] {
            setsockopt(raw, opt, &RING, "setting an XDP ring's size")?;
        }
        // SAFETY: an all-zero xdp_mmap_offsets is valid; the kernel fills it.
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        getsockopt(raw, libc::XDP_MMAP_OFFSETS, &mut off, "XDP_MMAP_OFFSETS")?;
        let fill = Ring::map(raw, &off.fr, libc::XDP_UMEM_PGOFF_FILL_RING, "mmap(fill ring)")?;
        let comp = Ring::map(raw, &off.cr, libc::XDP_UMEM_PGOFF_COMPLETION_RING, "mmap(completion ring)")?;
        let rx = Ring::map(raw, &off.rx, libc::XDP_PGOFF_RX_RING as u64, "mmap(RX ring)")?;
        let tx = Ring::map(raw, &off.tx, libc::XDP_PGOFF_TX_RING as u64, "mmap(TX ring)")?;
        let mut xsk =
            Xsk { fd, umem, fill, comp, rx, tx, free: (0..FRAMES as u64).map(|i| i * FRAME).collect(), copy: true };
        xsk.refill();
        // SAFETY: an all-zero sockaddr_xdp is valid.
        let mut sa: libc::sockaddr_xdp = unsafe { std::mem::zeroed() };
        sa.sxdp_family = libc::AF_XDP as u16;
        sa.sxdp_flags = libc::XDP_USE_NEED_WAKEUP;
        sa.sxdp_ifindex = ifindex;
        sa.sxdp_queue_id = queue;
        // SAFETY: sa is a live sockaddr_xdp of the size passed.
        let r = unsafe {
            libc::bind(raw, (&sa as *const libc::sockaddr_xdp).cast(), size_of::<libc::sockaddr_xdp>() as u32)
        };
        check(r, &format!("binding the AF_XDP socket to queue {queue}"))?;
        let mut opts = libc::xdp_options { flags: 0 };
        let zerocopy = getsockopt(raw, libc::XDP_OPTIONS, &mut opts, "XDP_OPTIONS").is_ok()
            && opts.flags & libc::XDP_OPTIONS_ZEROCOPY != 0;
        xsk.copy = !zerocopy;
        Ok(xsk)
    }

    /// Frames the kernel has sent are ours again.
    pub(super) fn reap(&mut self) {
        let n = self.comp.ready();
        for i in 0..n {
            let addr = self.comp.read(i);
            self.free.push(addr & !(FRAME - 1));
        }
        self.comp.release(n);
    }

    /// Free frames go to the fill ring, for the kernel to receive into.
    pub(super) fn refill(&mut self) {
        let n = self.fill.room().min(self.free.len() as u32);
        for i in 0..n {
            let f = self.free.pop().expect("counted");
            self.fill.write(i, f);
        }
        self.fill.submit(n);
    }

    /// Makes the kernel send what is on the TX ring (in copy mode it sends in the system call).
    pub(super) fn kick(&mut self) {
        for _ in 0..64 {
            if self.tx.drained() || !(self.copy || self.tx.needs_wakeup()) {
                return;
            }
            // SAFETY: a zero-length sendto on our socket.
            let r = unsafe {
                libc::sendto(self.fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0)
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::EINTR) => self.reap(),
                    _ => {
                        debug!(error = %e, "AF_XDP send failed");
                        return;
                    }
                }
            }
        }
    }

    pub(super) fn wait(&self, timeout_ms: i32) {
        let mut p = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one live pollfd.
        unsafe { libc::poll(&mut p, 1, timeout_ms) };
    }
}

/// `len` bytes of the UMEM at `addr`.
///
/// # Safety
/// The caller must own the frame (taken from RX, not yet on TX or in the fill ring) while it
/// uses the slice, and the UMEM must outlive it.
pub(super) unsafe fn frame<'a>(umem: &(*mut u8, usize), addr: u64, len: usize) -> &'a mut [u8] {
    assert!(addr as usize + len <= umem.1);
    // SAFETY: inside the UMEM; ownership as the caller promised.
    unsafe { std::slice::from_raw_parts_mut(umem.0.add(addr as usize), len) }
}
