//! A V4L2 device node through its ioctls: what it is, what it offers, setting
//! format and rate, and mmap streaming. Safe wrappers over `v4l2_uapi`; every
//! failure is an `io::Error` with the kernel's errno, never a panic.

use super::uapi::{self, c_text, zeroed, Fract};
use super::SizeRange;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Enumerations stop here even if a broken driver never says "no more" (EINVAL).
const MAX_ENTRIES: u32 = 1024;

/// `ioctl` with the argument struct, retried when a signal interrupts it.
fn xioctl<T>(fd: RawFd, request: libc::c_ulong, arg: &mut T) -> io::Result<()> {
    loop {
        // Safety: `arg` is a live, exclusively borrowed struct of the layout `request` encodes
        // (the request numbers in v4l2_uapi are built from these very types' sizes).
        let r = unsafe { libc::ioctl(fd, request as _, arg as *mut T) };
        if r != -1 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn fourcc_u32(fourcc: [u8; 4]) -> u32 {
    u32::from_le_bytes(fourcc)
}

/// What VIDIOC_QUERYCAP says about a node.
#[derive(Clone, Debug)]
pub struct Caps {
    pub driver: String,
    pub card: String,
    pub bus: String,
    /// The capabilities of this node (`device_caps`), or of the whole device on kernels that
    /// report only those.
    pub flags: u32,
}

impl Caps {
    /// A node we can stream video frames from (not a metadata node, not an output).
    pub fn is_capture(&self) -> bool {
        self.flags & uapi::CAP_VIDEO_CAPTURE != 0 && self.flags & uapi::CAP_STREAMING != 0
    }

    /// The capability names, as `v4l2-ctl` spells them, joined with " | ".
    pub fn flag_names(&self) -> String {
        let names: Vec<&str> = uapi::CAP_NAMES.iter().filter(|(bit, _)| self.flags & bit != 0).map(|(_, name)| *name).collect();
        names.join(" | ")
    }
}

/// One entry of VIDIOC_ENUM_FMT.
#[derive(Clone, Debug)]
pub struct FormatDesc {
    pub fourcc: [u8; 4],
    pub description: String,
}

/// One entry of VIDIOC_ENUM_FRAMEINTERVALS (intervals in seconds: numerator / denominator).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interval {
    Discrete(Fract),
    Stepwise { min: Fract, max: Fract, step: Fract },
}

/// The format the driver settled on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixFormat {
    pub fourcc: [u8; 4],
    pub width: u32,
    pub height: u32,
    /// Bytes from one line's start to the next (0 for compressed formats).
    pub bytes_per_line: u32,
}

/// An open V4L2 node. Closed when dropped.
pub struct Device {
    fd: OwnedFd,
}

impl Device {
    /// Open read-write and non-blocking (dequeueing waits in `poll`, with a timeout).
    pub fn open(path: &str) -> io::Result<Device> {
        let c_path = std::ffi::CString::new(path).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
        // Safety: a NUL-terminated path; the returned descriptor is checked before use.
        let fd = unsafe { libc::open(c_path.as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // Safety: `fd` was just opened and is owned by nothing else.
        Ok(Device { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    pub fn capabilities(&self) -> io::Result<Caps> {
        let mut cap: uapi::Capability = zeroed();
        xioctl(self.raw(), uapi::VIDIOC_QUERYCAP, &mut cap)?;
        let flags = if cap.capabilities & uapi::CAP_DEVICE_CAPS != 0 { cap.device_caps } else { cap.capabilities };
        Ok(Caps { driver: c_text(&cap.driver), card: c_text(&cap.card), bus: c_text(&cap.bus_info), flags })
    }

    /// Run an enumeration ioctl for index 0, 1, ... until the driver answers EINVAL.
    fn enumerate<T: uapi::Zeroable, R>(&self, request: libc::c_ulong, fill: impl Fn(&mut T, u32), mut take: impl FnMut(&T) -> Option<R>) -> io::Result<Vec<R>> {
        let mut out = Vec::new();
        for index in 0..MAX_ENTRIES {
            let mut entry: T = zeroed();
            fill(&mut entry, index);
            match xioctl(self.raw(), request, &mut entry) {
                Ok(()) => out.extend(take(&entry)),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    pub fn formats(&self) -> io::Result<Vec<FormatDesc>> {
        self.enumerate(
            uapi::VIDIOC_ENUM_FMT,
            |d: &mut uapi::FmtDesc, i| {
                d.index = i;
                d.type_ = uapi::BUF_TYPE_VIDEO_CAPTURE;
            },
            |d| Some(FormatDesc { fourcc: d.pixelformat.to_le_bytes(), description: c_text(&d.description) }),
        )
    }

    pub fn frame_sizes(&self, fourcc: [u8; 4]) -> io::Result<Vec<SizeRange>> {
        let mut ranged = false;
        self.enumerate(
            uapi::VIDIOC_ENUM_FRAMESIZES,
            |s: &mut uapi::FrmSizeEnum, i| {
                s.index = i;
                s.pixel_format = fourcc_u32(fourcc);
            },
            |s| {
                // A stepwise or continuous range is the only entry (index 0); a driver that
                // repeats it for later indices is not listed twice.
                if ranged {
                    return None;
                }
                let v = s.sizes;
                match s.type_ {
                    uapi::FRMSIZE_TYPE_DISCRETE => Some(SizeRange::Discrete { width: v[0], height: v[1] }),
                    uapi::FRMSIZE_TYPE_CONTINUOUS | uapi::FRMSIZE_TYPE_STEPWISE => {
                        ranged = true;
                        let continuous = s.type_ == uapi::FRMSIZE_TYPE_CONTINUOUS;
                        let step = |x: u32| if continuous { 1 } else { x };
                        Some(SizeRange::Stepwise {
                            min_width: v[0],
                            max_width: v[1],
                            step_width: step(v[2]),
                            min_height: v[3],
                            max_height: v[4],
                            step_height: step(v[5]),
                        })
                    }
                    _ => None,
                }
            },
        )
    }

    pub fn frame_intervals(&self, fourcc: [u8; 4], width: u32, height: u32) -> io::Result<Vec<Interval>> {
        let mut ranged = false;
        self.enumerate(
            uapi::VIDIOC_ENUM_FRAMEINTERVALS,
            |f: &mut uapi::FrmIvalEnum, i| {
                f.index = i;
                f.pixel_format = fourcc_u32(fourcc);
                f.width = width;
                f.height = height;
            },
            |f| {
                if ranged {
                    return None;
                }
                let [a, b, c] = f.intervals;
                if f.type_ == uapi::FRMIVAL_TYPE_DISCRETE {
                    Some(Interval::Discrete(a))
                } else {
                    ranged = true;
                    Some(Interval::Stepwise { min: a, max: b, step: c })
                }
            },
        )
    }

    /// Ask for `fourcc` at `width`x`height`; returns what the driver set (drivers adjust
    /// requests to what they support rather than refuse them).
    pub fn set_format(&self, fourcc: [u8; 4], width: u32, height: u32) -> io::Result<PixFormat> {
        let mut f: uapi::Format = zeroed();
        f.type_ = uapi::BUF_TYPE_VIDEO_CAPTURE;
        // Start from the current format so fields we do not choose (colorspace, field order)
        // keep the driver's values.
        xioctl(self.raw(), uapi::VIDIOC_G_FMT, &mut f)?;
        // Safety (this and the reads below): `pix` is the member for VIDEO_CAPTURE, and every
        // bit pattern is a valid PixFormat (plain u32 fields).
        let pix = unsafe { &mut f.fmt.pix };
        pix.pixelformat = fourcc_u32(fourcc);
        pix.width = width;
        pix.height = height;
        pix.field = uapi::FIELD_ANY;
        // Let the driver compute line length and image size for the new format.
        pix.bytesperline = 0;
        pix.sizeimage = 0;
        xioctl(self.raw(), uapi::VIDIOC_S_FMT, &mut f)?;
        let pix = unsafe { f.fmt.pix };
        Ok(PixFormat { fourcc: pix.pixelformat.to_le_bytes(), width: pix.width, height: pix.height, bytes_per_line: pix.bytesperline })
    }

    /// Ask for `fps` frames per second; returns the rate the driver set, if it says.
    pub fn set_fps(&self, fps: u32) -> io::Result<Option<f64>> {
        let mut p: uapi::StreamParm = zeroed();
        p.type_ = uapi::BUF_TYPE_VIDEO_CAPTURE;
        // Safety: `capture` is the member for VIDEO_CAPTURE; all-u32 fields.
        let capture = unsafe { &mut p.parm.capture };
        capture.timeperframe = Fract { numerator: 1, denominator: fps };
        xioctl(self.raw(), uapi::VIDIOC_S_PARM, &mut p)?;
        let t = unsafe { p.parm.capture.timeperframe };
        Ok((t.numerator > 0 && t.denominator > 0).then(|| f64::from(t.denominator) / f64::from(t.numerator)))
    }
}

/// One driver buffer mapped into our address space.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// Safety: the mapping is owned by one Stream and only read through `&mut Stream`.
unsafe impl Send for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Safety: `ptr`/`len` are exactly what mmap returned; nothing borrows the slice any more
        // (slices handed out by `Stream::next` cannot outlive the `&mut Stream`).
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// A dequeued frame, valid until the callback given to `Stream::next` returns.
pub struct Dequeued<'a> {
    /// The buffer's bytes, `bytesused` of them (clamped to the buffer's length).
    pub data: &'a [u8],
    /// The driver flagged the data as damaged.
    pub damaged: bool,
    pub sequence: u32,
    /// The driver's timestamp in microseconds (CLOCK_MONOTONIC), if it set one.
    pub timestamp_us: Option<u64>,
}

/// Streaming capture with mmap buffers. Dropping it stops the stream, unmaps the buffers and
/// closes the device; a failing STREAMOFF (camera unplugged) is no reason to panic.
pub struct Stream {
    buffers: Vec<Mapping>,
    /// Field order: the mappings go before the device closes.
    device: Device,
    timeout_ms: i32,
    streaming: bool,
}

impl Stream {
    /// Request `count` buffers (the driver may grant another number), map and queue them all,
    /// and start streaming. `timeout`: how long `next` waits for a frame (None: forever).
    pub fn start(device: Device, count: u32, timeout: Option<Duration>) -> io::Result<Stream> {
        let timeout_ms = timeout.map_or(-1, |t| t.as_millis().clamp(1, i32::MAX as u128) as i32);
        let mut stream = Stream { buffers: Vec::new(), device, timeout_ms, streaming: false };
        let fd = stream.device.raw();
        let mut req: uapi::RequestBuffers = zeroed();
        req.count = count;
        req.type_ = uapi::BUF_TYPE_VIDEO_CAPTURE;
        req.memory = uapi::MEMORY_MMAP;
        xioctl(fd, uapi::VIDIOC_REQBUFS, &mut req)?;
        if req.count == 0 {
            return Err(io::Error::new(io::ErrorKind::OutOfMemory, "the driver granted no capture buffers"));
        }
        for index in 0..req.count {
            let mut buf = Self::buffer(index);
            xioctl(fd, uapi::VIDIOC_QUERYBUF, &mut buf)?;
            let len = buf.length as usize;
            // Safety: `offset` is the driver's cookie for this buffer (memory = MMAP); a failed
            // mapping is checked before use.
            let ptr = unsafe {
                let offset = buf.m.offset;
                libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, offset as libc::off_t)
            };
            if ptr == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            stream.buffers.push(Mapping { ptr: ptr.cast(), len });
            xioctl(fd, uapi::VIDIOC_QBUF, &mut buf)?;
        }
        let mut kind = uapi::BUF_TYPE_VIDEO_CAPTURE as libc::c_int;
        xioctl(fd, uapi::VIDIOC_STREAMON, &mut kind)?;
        stream.streaming = true;
        Ok(stream)
    }

    fn buffer(index: u32) -> uapi::Buffer {
        let mut buf: uapi::Buffer = zeroed();
        buf.index = index;
        buf.type_ = uapi::BUF_TYPE_VIDEO_CAPTURE;
        buf.memory = uapi::MEMORY_MMAP;
        buf
    }

    /// Wait for the next frame, hand it to `take`, and give the buffer back to the driver.
    /// A timeout is `io::ErrorKind::TimedOut`; an unplugged camera is the kernel's error (ENODEV).
    pub fn next<R>(&mut self, take: impl FnOnce(Dequeued<'_>) -> R) -> io::Result<R> {
        let fd = self.device.raw();
        let mut buf = Self::buffer(0);
        loop {
            let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
            // Safety: one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, self.timeout_ms) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::TimedOut, format!("no frame within {} ms", self.timeout_ms)));
            }
            match xioctl(fd, uapi::VIDIOC_DQBUF, &mut buf) {
                Ok(()) => break,
                // Woken without a buffer ready (a spurious or error wake-up that cleared): wait again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        let Some(mapping) = self.buffers.get(buf.index as usize) else {
            return Err(io::Error::other(format!("the driver returned buffer {} of {}", buf.index, self.buffers.len())));
        };
        // Safety: the driver filled this mapped buffer and hands it to us until we queue it again
        // below; the slice does not outlive this call.
        let data = unsafe { std::slice::from_raw_parts(mapping.ptr, mapping.len) };
        let used = (buf.bytesused as usize).min(data.len());
        #[allow(clippy::useless_conversion)] // time_t/suseconds_t are i32 on 32-bit ARM
        let (sec, usec) = (i64::from(buf.timestamp.tv_sec), i64::from(buf.timestamp.tv_usec));
        let frame = Dequeued {
            data: &data[..used],
            damaged: buf.flags & uapi::BUF_FLAG_ERROR != 0,
            sequence: buf.sequence,
            timestamp_us: (sec > 0 || usec > 0).then(|| (sec.max(0) as u64) * 1_000_000 + usec.max(0) as u64),
        };
        let out = take(frame);
        xioctl(fd, uapi::VIDIOC_QBUF, &mut buf)?;
        Ok(out)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let fd = self.device.raw();
        if self.streaming {
            let mut kind = uapi::BUF_TYPE_VIDEO_CAPTURE as libc::c_int;
            if let Err(e) = xioctl(fd, uapi::VIDIOC_STREAMOFF, &mut kind) {
                // ENODEV: the camera is gone, and its stream with it.
                if e.raw_os_error() != Some(libc::ENODEV) {
                    log::warn!("v4l2: stopping the stream failed ({e}); closing the device anyway");
                }
            }
        }
        self.buffers.clear();
        // Release the driver's buffers so the next open can allocate them (a failure is harmless:
        // closing the descriptor releases them too).
        let mut req: uapi::RequestBuffers = zeroed();
        req.type_ = uapi::BUF_TYPE_VIDEO_CAPTURE;
        req.memory = uapi::MEMORY_MMAP;
        let _ = xioctl(fd, uapi::VIDIOC_REQBUFS, &mut req);
    }
}

/// `/dev/video*` in numeric order.
pub fn video_nodes() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/dev") else { return Vec::new() };
    let mut nodes: Vec<(u32, String)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = name.strip_prefix("video")?.parse::<u32>().ok()?;
            Some((n, format!("/dev/{name}")))
        })
        .collect();
    nodes.sort();
    nodes.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names_and_capture_test() {
        let caps = |flags| Caps { driver: String::new(), card: String::new(), bus: String::new(), flags };
        let cam = caps(uapi::CAP_VIDEO_CAPTURE | uapi::CAP_STREAMING);
        assert!(cam.is_capture());
        assert_eq!(cam.flag_names(), "VIDEO_CAPTURE | STREAMING");
        // A UVC metadata node: streaming, but no video capture.
        assert!(!caps(0x0080_0000 | uapi::CAP_STREAMING).is_capture());
    }

    #[test]
    fn a_file_that_is_no_camera_is_an_error_not_a_panic() {
        let dev = Device::open("/dev/null").expect("/dev/null opens");
        assert!(dev.capabilities().is_err());
        assert!(dev.formats().is_err());
        assert!(Stream::start(dev, 2, Some(Duration::from_millis(10))).is_err());
        assert!(Device::open("/dev/video-does-not-exist").is_err());
    }

    #[test]
    fn video_nodes_are_device_paths() {
        assert!(video_nodes().iter().all(|p| p.starts_with("/dev/video")));
    }
}
