//! Base64 decoding as credentials arrive on the wire: padding optional, no panics.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

pub fn standard(s: &str) -> Option<Vec<u8>> {
    STANDARD.decode(s).ok()
}

pub fn url_safe(s: &str) -> Option<Vec<u8>> {
    URL_SAFE.decode(s).ok()
}

pub fn encode_standard(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn lenient_padding() {
        assert_eq!(super::standard("YQ==").unwrap(), b"a");
        assert_eq!(super::standard("YQ").unwrap(), b"a");
        assert_eq!(super::url_safe("_-8").unwrap(), vec![0xff, 0xef]);
        assert!(super::standard("*").is_none());
        assert_eq!(super::encode_standard(b"a"), "YQ==");
    }
}
