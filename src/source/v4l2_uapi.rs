//! The part of the Linux V4L2 kernel UAPI (`linux/videodev2.h`) edgeseg uses,
//! written out by hand so the build needs no kernel headers and no bindgen
//! (libclang): a fresh machine with only a Rust toolchain builds it.
//!
//! Every struct mirrors the kernel's layout field for field; the ioctl numbers
//! encode each struct's size, so a wrong layout would be refused by the kernel
//! (ENOTTY) rather than misread. The size assertions at the bottom pin the
//! layouts of the 64-bit ABIs (x86_64, aarch64) and of 32-bit ARM.

#![allow(dead_code)] // mirrors of kernel structs: not every field is read

use libc::{c_ulong, timeval};
use std::mem::size_of;

// ---- ioctl request numbers (include/uapi/asm-generic/ioctl.h) ----

/// Direction bits and the width of the size field differ on a few architectures
/// (arch/*/include/uapi/asm/ioctl.h); x86, ARM and RISC-V use the generic values.
#[cfg(any(target_arch = "powerpc", target_arch = "powerpc64", target_arch = "mips", target_arch = "mips64", target_arch = "sparc", target_arch = "sparc64"))]
mod dir {
    pub const WRITE: u32 = 4;
    pub const READ: u32 = 2;
    pub const SIZE_BITS: u32 = 13;
}
#[cfg(not(any(target_arch = "powerpc", target_arch = "powerpc64", target_arch = "mips", target_arch = "mips64", target_arch = "sparc", target_arch = "sparc64")))]
mod dir {
    pub const WRITE: u32 = 1;
    pub const READ: u32 = 2;
    pub const SIZE_BITS: u32 = 14;
}

/// `_IOC(dir, 'V', nr, size)`.
const fn ioc(direction: u32, nr: u32, size: usize) -> c_ulong {
    assert!(size < (1 << dir::SIZE_BITS));
    let (nr_shift, type_shift, size_shift) = (0, 8, 16);
    let dir_shift = size_shift + dir::SIZE_BITS;
    ((direction << dir_shift) | ((size as u32) << size_shift) | ((b'V' as u32) << type_shift) | (nr << nr_shift)) as c_ulong
}
const fn ior<T>(nr: u32) -> c_ulong {
    ioc(dir::READ, nr, size_of::<T>())
}
const fn iow<T>(nr: u32) -> c_ulong {
    ioc(dir::WRITE, nr, size_of::<T>())
}
const fn iowr<T>(nr: u32) -> c_ulong {
    ioc(dir::READ | dir::WRITE, nr, size_of::<T>())
}

pub const VIDIOC_QUERYCAP: c_ulong = ior::<Capability>(0);
pub const VIDIOC_ENUM_FMT: c_ulong = iowr::<FmtDesc>(2);
pub const VIDIOC_G_FMT: c_ulong = iowr::<Format>(4);
pub const VIDIOC_S_FMT: c_ulong = iowr::<Format>(5);
pub const VIDIOC_REQBUFS: c_ulong = iowr::<RequestBuffers>(8);
pub const VIDIOC_QUERYBUF: c_ulong = iowr::<Buffer>(9);
pub const VIDIOC_QBUF: c_ulong = iowr::<Buffer>(15);
pub const VIDIOC_DQBUF: c_ulong = iowr::<Buffer>(17);
pub const VIDIOC_STREAMON: c_ulong = iow::<libc::c_int>(18);
pub const VIDIOC_STREAMOFF: c_ulong = iow::<libc::c_int>(19);
pub const VIDIOC_S_PARM: c_ulong = iowr::<StreamParm>(22);
pub const VIDIOC_ENUM_FRAMESIZES: c_ulong = iowr::<FrmSizeEnum>(74);
pub const VIDIOC_ENUM_FRAMEINTERVALS: c_ulong = iowr::<FrmIvalEnum>(75);

// ---- constants ----

pub const BUF_TYPE_VIDEO_CAPTURE: u32 = 1;
pub const MEMORY_MMAP: u32 = 1;
pub const FIELD_ANY: u32 = 0;

pub const CAP_VIDEO_CAPTURE: u32 = 0x0000_0001;
pub const CAP_STREAMING: u32 = 0x0400_0000;
/// `device_caps` is filled in (kernels since 3.3): it describes this node, `capabilities` the whole device.
pub const CAP_DEVICE_CAPS: u32 = 0x8000_0000;
/// Names of the capability bits (all of linux/videodev2.h's but DEVICE_CAPS), for `edgeseg probe`.
pub const CAP_NAMES: [(u32, &str); 29] = [
    (0x0000_0001, "VIDEO_CAPTURE"),
    (0x0000_0002, "VIDEO_OUTPUT"),
    (0x0000_0004, "VIDEO_OVERLAY"),
    (0x0000_0010, "VBI_CAPTURE"),
    (0x0000_0020, "VBI_OUTPUT"),
    (0x0000_0040, "SLICED_VBI_CAPTURE"),
    (0x0000_0080, "SLICED_VBI_OUTPUT"),
    (0x0000_0100, "RDS_CAPTURE"),
    (0x0000_0200, "VIDEO_OUTPUT_OVERLAY"),
    (0x0000_0400, "HW_FREQ_SEEK"),
    (0x0000_0800, "RDS_OUTPUT"),
    (0x0000_1000, "VIDEO_CAPTURE_MPLANE"),
    (0x0000_2000, "VIDEO_OUTPUT_MPLANE"),
    (0x0000_4000, "VIDEO_M2M_MPLANE"),
    (0x0000_8000, "VIDEO_M2M"),
    (0x0001_0000, "TUNER"),
    (0x0002_0000, "AUDIO"),
    (0x0004_0000, "RADIO"),
    (0x0008_0000, "MODULATOR"),
    (0x0010_0000, "SDR_CAPTURE"),
    (0x0020_0000, "EXT_PIX_FORMAT"),
    (0x0040_0000, "SDR_OUTPUT"),
    (0x0080_0000, "META_CAPTURE"),
    (0x0100_0000, "READWRITE"),
    (0x0400_0000, "STREAMING"),
    (0x0800_0000, "META_OUTPUT"),
    (0x1000_0000, "TOUCH"),
    (0x2000_0000, "IO_MC"),
    (0x0200_0000, "ASYNCIO"),
];

pub const FRMSIZE_TYPE_DISCRETE: u32 = 1;
pub const FRMSIZE_TYPE_CONTINUOUS: u32 = 2;
pub const FRMSIZE_TYPE_STEPWISE: u32 = 3;
pub const FRMIVAL_TYPE_DISCRETE: u32 = 1;

/// `capability` bit of `CaptureParm`: the driver takes a frame interval.
pub const CAP_TIMEPERFRAME: u32 = 0x1000;

/// The driver flagged the buffer's data as damaged (e.g. USB packet loss).
pub const BUF_FLAG_ERROR: u32 = 0x0040;

// ---- structs ----

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Capability {
    pub driver: [u8; 16],
    pub card: [u8; 32],
    pub bus_info: [u8; 32],
    pub version: u32,
    pub capabilities: u32,
    pub device_caps: u32,
    pub reserved: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct FmtDesc {
    pub index: u32,
    pub type_: u32,
    pub flags: u32,
    pub description: [u8; 32],
    pub pixelformat: u32,
    pub mbus_code: u32,
    pub reserved: [u32; 3],
}

/// `v4l2_frmsizeenum`; `sizes` is the union of `v4l2_frmsize_discrete` (the first two words:
/// width, height) and `v4l2_frmsize_stepwise` (min_width, max_width, step_width, min_height,
/// max_height, step_height).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FrmSizeEnum {
    pub index: u32,
    pub pixel_format: u32,
    pub type_: u32,
    pub sizes: [u32; 6],
    pub reserved: [u32; 2],
}

/// `v4l2_fract`: a frame interval in seconds, numerator / denominator.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fract {
    pub numerator: u32,
    pub denominator: u32,
}

/// `v4l2_frmivalenum`; `intervals` is the union of one `Fract` (discrete) and three (stepwise:
/// min, max, step).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FrmIvalEnum {
    pub index: u32,
    pub pixel_format: u32,
    pub width: u32,
    pub height: u32,
    pub type_: u32,
    pub intervals: [Fract; 3],
    pub reserved: [u32; 2],
}

/// `v4l2_pix_format` (single-planar).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PixFormat {
    pub width: u32,
    pub height: u32,
    pub pixelformat: u32,
    pub field: u32,
    /// Bytes from one line's start to the next; at least width × bytes per pixel, more when the
    /// driver pads lines (0 for compressed formats).
    pub bytesperline: u32,
    pub sizeimage: u32,
    pub colorspace: u32,
    pub priv_: u32,
    pub flags: u32,
    pub ycbcr_enc: u32,
    pub quantization: u32,
    pub xfer_func: u32,
}

/// The `fmt` union of `v4l2_format`: 200 bytes, pointer-aligned because one member
/// (`v4l2_window`) holds pointers; `usize` has the pointer's alignment on every Linux target.
#[repr(C)]
#[derive(Clone, Copy)]
pub union FormatUnion {
    pub pix: PixFormat,
    pub raw: [u8; 200],
    _align: [usize; 0],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Format {
    pub type_: u32,
    pub fmt: FormatUnion,
}

/// `v4l2_captureparm`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct CaptureParm {
    pub capability: u32,
    pub capturemode: u32,
    pub timeperframe: Fract,
    pub extendedmode: u32,
    pub readbuffers: u32,
    pub reserved: [u32; 4],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union StreamParmUnion {
    pub capture: CaptureParm,
    pub raw: [u8; 200],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct StreamParm {
    pub type_: u32,
    pub parm: StreamParmUnion,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct RequestBuffers {
    pub count: u32,
    pub type_: u32,
    pub memory: u32,
    pub capabilities: u32,
    pub flags: u8,
    pub reserved: [u8; 3],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Timecode {
    pub type_: u32,
    pub flags: u32,
    pub frames: u8,
    pub seconds: u8,
    pub minutes: u8,
    pub hours: u8,
    pub userbits: [u8; 4],
}

/// The `m` union of `v4l2_buffer`: the mmap offset, or a user pointer / plane pointer / dmabuf
/// fd (unsigned long and pointer sized).
#[repr(C)]
#[derive(Clone, Copy)]
pub union BufferM {
    pub offset: u32,
    pub userptr: c_ulong,
    pub fd: i32,
}

/// `v4l2_buffer`. The timestamp is the C library's `struct timeval`, as the kernel's ioctl for
/// this ABI expects (its size is part of the request number).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Buffer {
    pub index: u32,
    pub type_: u32,
    pub bytesused: u32,
    pub flags: u32,
    pub field: u32,
    pub timestamp: timeval,
    pub timecode: Timecode,
    pub sequence: u32,
    pub memory: u32,
    pub m: BufferM,
    pub length: u32,
    pub reserved2: u32,
    pub request_fd: i32,
}

/// All-zero value of a kernel struct, the state every V4L2 ioctl argument starts from.
pub fn zeroed<T: Zeroable>() -> T {
    // Safety: only implemented for the plain-data structs above, for which all-zero bytes are
    // a valid value (integers, byte arrays, and unions of those; timeval is two integers).
    unsafe { std::mem::zeroed() }
}

/// Marker for the structs above: plain data, valid when all-zero.
pub trait Zeroable {}
impl Zeroable for Capability {}
impl Zeroable for FmtDesc {}
impl Zeroable for FrmSizeEnum {}
impl Zeroable for FrmIvalEnum {}
impl Zeroable for Format {}
impl Zeroable for StreamParm {}
impl Zeroable for RequestBuffers {}
impl Zeroable for Buffer {}

/// A fixed-size NUL-padded kernel string as text.
pub fn c_text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

// The layouts the kernel expects: sizes and offsets as `sizeof`/`offsetof` give them for
// linux/videodev2.h (Linux 6.x headers, gcc for x86_64 and aarch64).
const _: () = {
    assert!(size_of::<Capability>() == 104);
    assert!(size_of::<FmtDesc>() == 64);
    assert!(size_of::<FrmSizeEnum>() == 44);
    assert!(size_of::<FrmIvalEnum>() == 52);
    assert!(size_of::<PixFormat>() == 48);
    assert!(size_of::<StreamParm>() == 204);
    assert!(size_of::<RequestBuffers>() == 20);
    assert!(size_of::<Timecode>() == 16);
};
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(size_of::<Format>() == 208);
    assert!(size_of::<Buffer>() == 88);
    assert!(std::mem::offset_of!(Buffer, timestamp) == 24);
    assert!(std::mem::offset_of!(Buffer, m) == 64);
};
// 32-bit ARM with the C library's 32-bit time_t (what the libc crate uses for armv7 gnueabihf).
#[cfg(all(target_pointer_width = "32", target_arch = "arm"))]
const _: () = {
    assert!(size_of::<Format>() == 204);
    assert!(size_of::<Buffer>() == 68);
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Request numbers as the kernel headers define them (`printf("%lx", VIDIOC_...)` against
    /// linux/videodev2.h; the same on x86_64 and aarch64).
    #[test]
    #[cfg(all(target_pointer_width = "64", any(target_arch = "x86_64", target_arch = "aarch64")))]
    fn request_numbers_match_the_kernel_headers() {
        assert_eq!(VIDIOC_QUERYCAP, 0x8068_5600);
        assert_eq!(VIDIOC_ENUM_FMT, 0xc040_5602);
        assert_eq!(VIDIOC_G_FMT, 0xc0d0_5604);
        assert_eq!(VIDIOC_S_FMT, 0xc0d0_5605);
        assert_eq!(VIDIOC_REQBUFS, 0xc014_5608);
        assert_eq!(VIDIOC_QUERYBUF, 0xc058_5609);
        assert_eq!(VIDIOC_QBUF, 0xc058_560f);
        assert_eq!(VIDIOC_DQBUF, 0xc058_5611);
        assert_eq!(VIDIOC_STREAMON, 0x4004_5612);
        assert_eq!(VIDIOC_STREAMOFF, 0x4004_5613);
        assert_eq!(VIDIOC_S_PARM, 0xc0cc_5616);
        assert_eq!(VIDIOC_ENUM_FRAMESIZES, 0xc02c_564a);
        assert_eq!(VIDIOC_ENUM_FRAMEINTERVALS, 0xc034_564b);
    }

    #[test]
    fn kernel_strings_stop_at_the_first_nul() {
        assert_eq!(c_text(b"vivid\0\0\0"), "vivid");
        assert_eq!(c_text(b"full"), "full");
    }
}
