//! The hostile-input table (`testing::hostile_bodies`) through decode and verify: each case is
//! refused with its contract code, and none panics.

use bytes::Bytes;

use super::catalogue::Product;
use super::policy::CallbackPolicy;
use super::{body, verify, Rejection};
use crate::testing::{hostile_bodies, now_secs, SECRET};

fn refusal(content_type: Option<&str>, bytes: &[u8]) -> Result<(), Rejection> {
    let decoded = body::decode(Bytes::copy_from_slice(bytes), content_type)?;
    verify(
        decoded,
        &CallbackPolicy::with_secret(SECRET),
        Product::Zim,
        now_secs(),
    )
    .map(|_| ())
}

#[test]
fn every_hostile_body_is_refused_with_its_code() {
    let cases = hostile_bodies();
    assert!(cases.len() >= 40, "the table shrank to {}", cases.len());
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|case| match refusal(case.content_type, &case.body) {
            Err(rejection) if rejection.code() == case.code => None,
            Err(rejection) => Some(format!(
                "{}: {} instead of {}",
                case.name,
                rejection.code(),
                case.code
            )),
            Ok(()) => Some(format!("{}: accepted instead of {}", case.name, case.code)),
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
