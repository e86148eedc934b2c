//! ZEGOCLOUD's callback signature: `sha1_hex(concat(sort_as_strings([secret, timestamp, nonce])))`.

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// The signature ZEGOCLOUD computes for one secret; `timestamp` and `nonce` as sent.
pub fn sign(secret: &str, timestamp: &str, nonce: &str) -> String {
    let mut parts = [secret, timestamp, nonce];
    // Byte-wise order, as PHP's sort(SORT_STRING) and Go's sort.Strings in ZEGOCLOUD's samples.
    parts.sort_unstable();
    let mut hasher = Sha1::new();
    for part in parts {
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// True when `signature` matches any configured secret (several during a rotation).
pub fn verify(secrets: &[Secret], timestamp: &str, nonce: &str, signature: &str) -> bool {
    matching_secret(secrets, timestamp, nonce, signature).is_some()
}

/// Which secret signed it, counted from 1 in the configured order; `None` when none did.
///
/// Every secret is checked, whatever matched first, and each comparison is constant-time,
/// so the answer time says nothing about how close a guess was.
pub fn matching_secret(
    secrets: &[Secret],
    timestamp: &str,
    nonce: &str,
    signature: &str,
) -> Option<usize> {
    secrets
        .iter()
        .enumerate()
        .fold(None, |matched, (position, secret)| {
            let expected = sign(secret.expose(), timestamp, nonce);
            let this = bool::from(expected.as_bytes().ct_eq(signature.as_bytes()));
            matched.or(this.then_some(position + 1))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed independently: `printf '%s' 1499676978350176secret | sha1sum`
    /// (sorted: "1499676978" < "350176" < "secret").
    const KNOWN_ANSWER: &str = "264b7f500b4935a082fef1da1760769245880d7c";

    fn secrets(values: &[&str]) -> Vec<Secret> {
        values.iter().map(|v| Secret::new(*v)).collect()
    }

    #[test]
    fn known_answer_vector() {
        assert_eq!(sign("secret", "1499676978", "350176"), KNOWN_ANSWER);
        assert!(verify(
            &secrets(&["secret"]),
            "1499676978",
            "350176",
            KNOWN_ANSWER
        ));
    }

    #[test]
    fn order_of_inputs_does_not_matter_to_sign_but_does_to_verify() {
        // The inputs are sorted before hashing, so the secret can sit anywhere in the order.
        assert_eq!(sign("a", "c", "b"), sign("b", "a", "c"));
        // Swapping timestamp and nonce in the request still verifies (same sorted set) ...
        assert!(verify(
            &secrets(&["secret"]),
            "350176",
            "1499676978",
            KNOWN_ANSWER
        ));
        // ... but changing either value does not.
        assert!(!verify(
            &secrets(&["secret"]),
            "1499676979",
            "350176",
            KNOWN_ANSWER
        ));
        assert!(!verify(
            &secrets(&["secret"]),
            "1499676978",
            "350177",
            KNOWN_ANSWER
        ));
    }

    #[test]
    fn wrong_secret_fails() {
        assert!(!verify(
            &secrets(&["other"]),
            "1499676978",
            "350176",
            KNOWN_ANSWER
        ));
    }

    #[test]
    fn the_matching_secret_of_a_rotation_is_named() {
        let s = secrets(&["old", "secret"]);
        assert_eq!(
            matching_secret(&s, "1499676978", "350176", KNOWN_ANSWER),
            Some(2)
        );
        assert_eq!(matching_secret(&s, "1499676978", "350176", "0"), None);
    }

    #[test]
    fn any_secret_of_a_rotation_is_accepted() {
        assert!(verify(
            &secrets(&["old", "secret"]),
            "1499676978",
            "350176",
            KNOWN_ANSWER
        ));
        assert!(verify(
            &secrets(&["secret", "new"]),
            "1499676978",
            "350176",
            KNOWN_ANSWER
        ));
    }

    #[test]
    fn wrong_case_length_or_empty_signature_fails() {
        let s = secrets(&["secret"]);
        assert!(!verify(
            &s,
            "1499676978",
            "350176",
            &KNOWN_ANSWER.to_uppercase()
        ));
        assert!(!verify(&s, "1499676978", "350176", &KNOWN_ANSWER[..39]));
        assert!(!verify(
            &s,
            "1499676978",
            "350176",
            &format!("{KNOWN_ANSWER}0")
        ));
        assert!(!verify(&s, "1499676978", "350176", ""));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Arbitrary inputs never panic, and only the right signature verifies.
        #[test]
        fn verify_never_panics_and_rejects_other_signatures(
            timestamp in ".{0,40}", nonce in ".{0,40}", signature in ".{0,80}"
        ) {
            let secrets = [Secret::new("secret")];
            let right = sign("secret", &timestamp, &nonce);
            prop_assert_eq!(verify(&secrets, &timestamp, &nonce, &signature), signature == right);
            prop_assert!(verify(&secrets, &timestamp, &nonce, &right));
        }
    }
}
