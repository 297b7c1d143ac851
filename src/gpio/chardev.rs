//! Linux GPIO character device backend (gpiocdev).
