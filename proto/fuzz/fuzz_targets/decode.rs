//! Fuzzes the frame decoder: any bytes must decode to frames, a request for more, or a typed
//! error, without panicking; every decoded frame must re-encode to the bytes it came from.
#![no_main]

use bytes::BytesMut;
use imbench_proto::Codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let codec = Codec::new(4096);
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        match codec.decode(&mut buf) {
            Ok(Some(frame)) => {
                let consumed = before - buf.len();
                let start = data.len() - before;
                let mut again = BytesMut::new();
                codec.encode(&frame, &mut again).expect("a decoded frame re-encodes");
                assert_eq!(&again[..], &data[start..start + consumed]);
            }
            Ok(None) | Err(_) => break,
        }
    }
});
