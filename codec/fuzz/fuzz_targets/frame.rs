//! Fuzz target `frame`: arbitrary bytes through the attr0 frame decoder, once
//! in one piece and once in pieces whose sizes come from the input, under
//! small bounds also taken from the input. Checks that the decoder never
//! claims more bytes than it was given, always makes progress, never holds
//! more than its bounds, delivers the same frames however the bytes are
//! split, and that what it delivers respects the bounds and survives
//! re-encoding. A panic is a bug.
#![no_main]

use proxymapd_codec::attr::{Decoded, FrameDecoder, Limits};

/// Header bytes that choose the bounds and the split pattern.
const HEADER: usize = 4;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER {
        return;
    }
    let (head, wire) = data.split_at(HEADER);
    let limits = Limits {
        max_string: usize::from(head[0] % 64),
        max_attrs: usize::from(head[1] % 12),
        // Sometimes below max_string: the decoder must cope with that too.
        max_frame: usize::from(head[2] % 160),
    };
    let whole = decode(limits, &[wire]);
    let mut pieces = Vec::new();
    let mut rest = wire;
    let mut state = u32::from(head[3]) | 0x100;
    while !rest.is_empty() {
        // A small xorshift over the header byte: piece sizes of 1 to 16
        // bytes, with an occasional empty piece.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state % 17) as usize;
        let (piece, tail) = rest.split_at(n.min(rest.len()));
        pieces.push(piece);
        rest = tail;
    }
    let split = decode(limits, &pieces);
    assert_eq!(whole, split, "splitting the input changed the frames");
    for decoded in &whole.frames {
        check(limits, decoded);
    }
});

/// What decoding produced: the frames, the bytes left after the last one,
/// and whether the decoder was idle at the end.
#[derive(Debug, PartialEq)]
struct Outcome {
    frames: Vec<Decoded>,
    tail: usize,
    idle: bool,
}

fn decode(limits: Limits, pieces: &[&[u8]]) -> Outcome {
    let mut dec = FrameDecoder::new(limits);
    let mut frames = Vec::new();
    let mut since_frame = 0;
    for piece in pieces {
        let mut at = 0;
        while at < piece.len() {
            let (used, out) = dec.feed(&piece[at..]);
            assert!(used > 0, "no progress on {} bytes", piece.len() - at);
            assert!(used <= piece.len() - at, "consumed more than given");
            at += used;
            since_frame += used;
            assert!(
                dec.buffered() <= limits.max_frame,
                "holds {} bytes, bound {}",
                dec.buffered(),
                limits.max_frame
            );
            if let Some(frame) = out {
                frames.push(frame);
                since_frame = 0;
                assert!(dec.is_idle(), "not idle right after a frame");
                assert_eq!(dec.buffered(), 0);
            }
        }
        let (used, out) = dec.feed(&[]);
        assert_eq!((used, out), (0, None), "empty input must be a no-op");
    }
    let idle = dec.is_idle();
    assert_eq!(
        idle,
        since_frame == 0,
        "idle must mean no partial frame ({since_frame} bytes since the last)"
    );
    Outcome {
        frames,
        tail: since_frame,
        idle,
    }
}

/// A delivered frame respects the bounds and re-encodes to itself.
fn check(limits: Limits, decoded: &Decoded) {
    let (frame, overflows) = match decoded {
        Decoded::Frame(frame) => (frame, &[][..]),
        Decoded::Oversized { frame, overflows } => {
            assert!(!overflows.is_empty(), "oversized without an overflow");
            (frame, &overflows[..])
        }
        Decoded::Malformed(_) => return,
    };
    assert!(frame.len() <= limits.max_attrs, "too many attributes kept");
    let mut kept = 0;
    for attr in frame {
        assert!(!attr.name.is_empty(), "empty name inside a frame");
        assert!(attr.name.len() <= limits.max_string);
        assert!(attr.value.len() <= limits.max_string);
        assert!(!attr.name.contains(&0) && !attr.value.contains(&0));
        kept += attr.name.len() + attr.value.len();
    }
    assert!(kept <= limits.max_frame, "frame kept {kept} bytes");
    let mut last = None;
    for o in overflows {
        assert!(last < Some(o.index), "overflows out of order");
        last = Some(o.index);
        let attr = &frame[o.index];
        assert!(attr.value.is_empty(), "a dropped value was kept");
        // Bytes the frame held when this value arrived: everything before
        // it (dropped values are empty) and its own name.
        let before: usize = frame[..o.index]
            .iter()
            .map(|a| a.name.len() + a.value.len())
            .sum::<usize>()
            + attr.name.len();
        assert!(
            o.len > limits.max_string || before + o.len > limits.max_frame,
            "dropped a value of {} bytes that fits",
            o.len
        );
    }
    // Re-encoding the frame (dropped values as the empty strings they now
    // are) and decoding it with room to spare gives the same attributes.
    let mut wire = Vec::new();
    for attr in frame {
        wire.extend_from_slice(&attr.name);
        wire.push(0);
        wire.extend_from_slice(&attr.value);
        wire.push(0);
    }
    wire.push(0);
    let roomy = Limits {
        max_string: limits.max_string,
        max_attrs: limits.max_attrs,
        max_frame: kept,
    };
    let mut dec = FrameDecoder::new(roomy);
    let (used, out) = dec.feed(&wire);
    assert_eq!(used, wire.len());
    assert_eq!(out, Some(Decoded::Frame(frame.clone())));
}
