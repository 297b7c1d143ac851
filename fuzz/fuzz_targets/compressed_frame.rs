//! cargo-fuzz target: the properties of `edgeseg::fuzzing::compressed_frame`.
//!
//! edgeseg contains panics raised inside the image decoders (`imageio::contain_decoder_panic`:
//! zune-jpeg 0.5.15's AVX2 IDCT panics on some JPEGs), but libfuzzer-sys's panic hook aborts
//! on every panic, caught or not. The default hook is put back, so that a contained panic
//! is what it is in the daemon (an error) and one that escapes edgeseg still aborts (libfuzzer-sys
//! checks the unwind after each input).
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: {
        let _ = std::panic::take_hook();
    },
    |data: &[u8]| edgeseg::fuzzing::compressed_frame(data)
);
