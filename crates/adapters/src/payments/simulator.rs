//! A stand-in for the SSLCommerz sandbox, served on Depot's own listener outside prod: the
//! session API, a payment page with pay / fail / cancel, the IPN it posts back (signed with
//! the store password exactly as the gateway signs), the validation and transaction-query
//! APIs and refunds — the documented request and answer shapes, so Depot's real client runs
//! the whole flow on one machine. Its transactions live in this process's memory.
//!
//! `tamper` on the pay action makes the simulator report a wrong `amount` or `currency`, or
//! `risk` level 1, in the IPN and in its validation answers.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use super::signature::{field, sign};

/// Transactions the simulator keeps at most (a session beyond is refused).
const MAX_SESSIONS: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pending,
    Valid,
    Failed,
    Cancelled,
}

#[derive(Debug, Clone)]
struct Txn {
    tran_id: String,
    amount: String,
    currency: String,
    urls: [String; 4],
    status: Status,
    val_id: String,
    bank_tran_id: String,
    reported_amount: String,
    reported_currency: String,
    risk_level: &'static str,
    validated: bool,
}

#[derive(Debug, Clone)]
struct Refund {
    bank_tran_id: String,
    tran_id: String,
    amount: String,
    asked: u32,
}

#[derive(Default)]
struct State {
    sessions: HashMap<String, Txn>,
    by_tran: HashMap<String, String>,
    by_val: HashMap<String, String>,
    by_bank: HashMap<String, String>,
    refunds: HashMap<String, Refund>,
    next: u64,
}

/// What a button on the payment page does: post the IPN, then send the browser on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub ipn_url: String,
    pub ipn: Vec<(String, String)>,
    pub redirect: String,
}

/// The simulated gateway of one store.
pub struct Simulator {
    store_id: String,
    store_password: String,
    state: Mutex<State>,
    http: reqwest::Client,
}

fn get<'a>(params: &'a [(String, String)], key: &str) -> &'a str {
    field(params, key).unwrap_or_default()
}

impl Simulator {
    pub fn new(store_id: &str, store_password: &str) -> Self {
        Self {
            store_id: store_id.to_owned(),
            store_password: store_password.to_owned(),
            state: Mutex::new(State::default()),
            http: super::http_client(std::time::Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        }
    }

    /// Posts an outcome's IPN to its `ipn_url`, as the gateway does (form-encoded); answers
    /// the HTTP status it got.
    pub async fn deliver(&self, outcome: &Outcome) -> Result<u16, String> {
        if outcome.ipn_url.is_empty() {
            return Err("the session named no ipn_url".into());
        }
        self.http
            .post(&outcome.ipn_url)
            .form(&outcome.ipn)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| e.without_url().to_string())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn authorised(&self, params: &[(String, String)]) -> bool {
        get(params, "store_id") == self.store_id
            && get(params, "store_passwd") == self.store_password
    }

    /// `POST /gwprocess/v4/api.php`: opens a session whose page is under `page_base`.
    pub fn open(&self, form: &[(String, String)], page_base: &str) -> Value {
        if !self.authorised(form) {
            return json!({"status": "FAILED",
                "failedreason": "Store Credential Error Or Store is De-active"});
        }
        for required in [
            "total_amount",
            "currency",
            "tran_id",
            "success_url",
            "fail_url",
            "cancel_url",
            "cus_name",
            "cus_email",
            "cus_phone",
            "product_name",
        ] {
            if get(form, required).is_empty() {
                return json!({"status": "FAILED",
                    "failedreason": format!("Invalid Information: '{required}' is missing")});
            }
        }
        let mut st = self.state();
        if st.sessions.len() >= MAX_SESSIONS {
            return json!({"status": "FAILED", "failedreason": "the simulator is full"});
        }
        st.next += 1;
        let key = format!(
            "SIM{:012}{}",
            st.next,
            &crate::payments::md5_hex(get(form, "tran_id").as_bytes())[..12]
        )
        .to_uppercase();
        let amount = get(form, "total_amount").to_owned();
        let currency = get(form, "currency").to_owned();
        let txn = Txn {
            tran_id: get(form, "tran_id").to_owned(),
            reported_amount: amount.clone(),
            reported_currency: currency.clone(),
            amount,
            currency,
            urls: ["success_url", "fail_url", "cancel_url", "ipn_url"]
                .map(|k| get(form, k).to_owned()),
            status: Status::Pending,
            val_id: String::new(),
            bank_tran_id: String::new(),
            risk_level: "0",
            validated: false,
        };
        st.by_tran.insert(txn.tran_id.clone(), key.clone());
        st.sessions.insert(key.clone(), txn);
        json!({
            "status": "SUCCESS",
            "failedreason": "",
            "sessionkey": key,
            "gw": {"visa": "", "master": "", "amex": "", "othercards": "", "internetbanking": "", "mobilebanking": ""},
            "redirectGatewayURL": format!("{page_base}/{key}"),
            "GatewayPageURL": format!("{page_base}/{key}"),
            "storeBanner": "", "storeLogo": "", "desc": [], "is_direct_pay_enable": "0",
        })
    }

    /// The payment page of a session, with its three buttons.
    pub fn page(&self, key: &str) -> Option<String> {
        let st = self.state();
        let t = st.sessions.get(key)?;
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        Some(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>SSLCommerz simulator</title></head>\
             <body><h1>SSLCommerz simulator</h1><p>Transaction <code>{}</code>: {} {} ({})</p>\
             <form method=\"post\"><button name=\"action\" value=\"pay\">Pay</button> \
             <button name=\"action\" value=\"fail\">Fail</button> \
             <button name=\"action\" value=\"cancel\">Cancel</button></form></body></html>",
            esc(&t.tran_id),
            esc(&t.amount),
            esc(&t.currency),
            match t.status {
                Status::Pending => "waiting",
                Status::Valid => "paid",
                Status::Failed => "failed",
                Status::Cancelled => "cancelled",
            }
        ))
    }

    /// A button pressed (`pay`, `fail`, `cancel`), with an optional `tamper`
    /// (`amount`, `currency`, `risk`). `Err` names what is wrong with the request.
    pub fn act(&self, key: &str, action: &str, tamper: Option<&str>) -> Result<Outcome, String> {
        let mut st = self.state();
        st.next += 1;
        let n = st.next;
        let t = st.sessions.get_mut(key).ok_or("no such session")?;
        if t.status != Status::Pending {
            return Err("the transaction is over".into());
        }
        let (status, redirect) = match action {
            "pay" => (Status::Valid, t.urls[0].clone()),
            "fail" => (Status::Failed, t.urls[1].clone()),
            "cancel" => (Status::Cancelled, t.urls[2].clone()),
            _ => return Err("action must be pay, fail or cancel".into()),
        };
        match tamper {
            None | Some("") => {}
            Some("amount") => {
                let cents = crate::payments::sslcommerz_cents(&t.amount).unwrap_or(0) + 100;
                t.reported_amount = format!("{}.{:02}", cents / 100, cents % 100);
            }
            Some("currency") => {
                t.reported_currency = if t.currency == "USD" { "BDT" } else { "USD" }.to_owned();
            }
            Some("risk") => t.risk_level = "1",
            Some(_) => return Err("tamper must be amount, currency or risk".into()),
        }
        t.status = status;
        t.bank_tran_id = format!("SIMBANK{n:014}");
        if status == Status::Valid {
            t.val_id = format!("SIMVAL{n:014}");
        }
        let t = t.clone();
        if status == Status::Valid {
            st.by_val.insert(t.val_id.clone(), key.to_owned());
            st.by_bank.insert(t.bank_tran_id.clone(), key.to_owned());
        }
        drop(st);
        Ok(Outcome {
            ipn_url: t.urls[3].clone(),
            ipn: self.ipn(&t),
            redirect,
        })
    }

    /// The IPN of a transaction, signed.
    fn ipn(&self, t: &Txn) -> Vec<(String, String)> {
        let status = match t.status {
            Status::Valid => "VALID",
            Status::Failed => "FAILED",
            Status::Cancelled => "CANCELLED",
            Status::Pending => "PENDING",
        };
        let mut fields: Vec<(String, String)> = [
            ("amount", t.reported_amount.as_str()),
            ("bank_tran_id", &t.bank_tran_id),
            ("base_fair", "0.00"),
            ("card_brand", "VISA"),
            ("card_issuer", "SIMULATED BANK"),
            ("card_issuer_country", "Bangladesh"),
            ("card_issuer_country_code", "BD"),
            ("card_no", "418117XXXXXX6675"),
            ("card_type", "VISA-Simulated"),
            ("currency", &t.reported_currency),
            ("currency_amount", &t.reported_amount),
            ("currency_rate", "1.0000"),
            ("currency_type", &t.reported_currency),
            ("risk_level", t.risk_level),
            (
                "risk_title",
                if t.risk_level == "1" { "Risky" } else { "Safe" },
            ),
            ("status", status),
            ("store_amount", &t.reported_amount),
            ("store_id", &self.store_id),
            ("tran_date", "2026-01-01 00:00:00"),
            ("tran_id", &t.tran_id),
            ("val_id", &t.val_id),
            ("value_a", ""),
            ("value_b", ""),
            ("value_c", ""),
            ("value_d", ""),
        ]
        .into_iter()
        .filter(|(k, _)| *k != "val_id" || !t.val_id.is_empty())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let keys = fields
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let signature = sign(&fields, &keys, &self.store_password);
        fields.push(("verify_sign".into(), signature));
        fields.push(("verify_key".into(), keys));
        fields
    }

    fn element(t: &Txn, status: &str) -> Value {
        json!({
            "status": status,
            "tran_date": "2026-01-01 00:00:00",
            "tran_id": t.tran_id,
            "val_id": t.val_id,
            "amount": t.reported_amount,
            "store_amount": t.reported_amount,
            "currency": t.reported_currency,
            "bank_tran_id": t.bank_tran_id,
            "card_type": "VISA-Simulated",
            "card_no": "418117XXXXXX6675",
            "card_issuer": "SIMULATED BANK",
            "card_brand": "VISA",
            "card_issuer_country": "Bangladesh",
            "card_issuer_country_code": "BD",
            "currency_type": t.reported_currency,
            "currency_amount": t.reported_amount,
            "currency_rate": "1.0000",
            "risk_level": t.risk_level,
            "risk_title": if t.risk_level == "1" { "Risky" } else { "Safe" },
            "APIConnect": "DONE",
        })
    }

    /// `GET /validator/api/validationserverAPI.php`.
    pub fn validate(&self, params: &[(String, String)]) -> Value {
        if !self.authorised(params) {
            return json!({"status": "INVALID_TRANSACTION", "APIConnect": "INVALID_REQUEST"});
        }
        let mut st = self.state();
        let Some(key) = st.by_val.get(get(params, "val_id")).cloned() else {
            return json!({"status": "INVALID_TRANSACTION"});
        };
        let Some(t) = st.sessions.get_mut(&key) else {
            return json!({"status": "INVALID_TRANSACTION"});
        };
        let status = if t.validated { "VALIDATED" } else { "VALID" };
        t.validated = true;
        Self::element(t, status)
    }

    /// `GET /validator/api/merchantTransIDvalidationAPI.php`: the transaction query
    /// (`tran_id`), a refund (`bank_tran_id` + `refund_amount`) or a refund's status
    /// (`refund_ref_id`).
    pub fn merchant_api(&self, params: &[(String, String)]) -> Value {
        if !self.authorised(params) {
            return json!({"APIConnect": "INVALID_REQUEST"});
        }
        let mut st = self.state();
        if !get(params, "refund_ref_id").is_empty() {
            let Some(r) = st.refunds.get_mut(get(params, "refund_ref_id")) else {
                return json!({"APIConnect": "DONE", "status": "cancelled",
                    "errorReason": "no such refund"});
            };
            // Processing when first asked, refunded after.
            r.asked += 1;
            let status = if r.asked > 1 {
                "refunded"
            } else {
                "processing"
            };
            return json!({"APIConnect": "DONE", "bank_tran_id": r.bank_tran_id,
                "tran_id": r.tran_id, "refund_ref_id": get(params, "refund_ref_id"),
                "initiated_on": "2026-01-01 00:00:00", "refunded_on": "2026-01-01 00:00:00",
                "amount": r.amount, "status": status, "errorReason": ""});
        }
        if !get(params, "bank_tran_id").is_empty() {
            let bank = get(params, "bank_tran_id");
            let Some(t) = st
                .by_bank
                .get(bank)
                .and_then(|k| st.sessions.get(k))
                .cloned()
            else {
                return json!({"APIConnect": "DONE", "status": "failed",
                    "errorReason": "no such bank transaction"});
            };
            let asked = crate::payments::sslcommerz_cents(get(params, "refund_amount"));
            let paid = crate::payments::sslcommerz_cents(&t.amount);
            let refunded: i64 = st
                .refunds
                .values()
                .filter(|r| r.bank_tran_id == bank)
                .filter_map(|r| crate::payments::sslcommerz_cents(&r.amount))
                .sum();
            match (asked, paid) {
                (Some(a), Some(p)) if a > 0 && a + refunded <= p => {}
                _ => {
                    return json!({"APIConnect": "DONE", "bank_tran_id": bank,
                        "status": "failed", "errorReason": "invalid refund amount"});
                }
            }
            st.next += 1;
            let id = format!("SIMREF{:014}", st.next);
            st.refunds.insert(
                id.clone(),
                Refund {
                    bank_tran_id: bank.to_owned(),
                    tran_id: t.tran_id.clone(),
                    amount: get(params, "refund_amount").to_owned(),
                    asked: 0,
                },
            );
            return json!({"APIConnect": "DONE", "bank_tran_id": bank,
                "trans_id": t.tran_id, "refund_ref_id": id, "status": "success",
                "errorReason": ""});
        }
        let Some(t) = st
            .by_tran
            .get(get(params, "tran_id"))
            .and_then(|k| st.sessions.get(k))
        else {
            return json!({"APIConnect": "DONE", "no_of_trans_found": 0, "element": []});
        };
        let status = match t.status {
            Status::Valid if t.validated => "VALIDATED",
            Status::Valid => "VALID",
            Status::Failed => "FAILED",
            Status::Cancelled => "CANCELLED",
            Status::Pending => "PENDING",
        };
        json!({"APIConnect": "DONE", "no_of_trans_found": 1,
            "element": [Self::element(t, status)]})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payments::verify;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn session(sim: &Simulator) -> String {
        let answer = sim.open(
            &form(&[
                ("store_id", "store"),
                ("store_passwd", "pw"),
                ("total_amount", "12.50"),
                ("currency", "BDT"),
                ("tran_id", "D1"),
                ("success_url", "s"),
                ("fail_url", "f"),
                ("cancel_url", "c"),
                ("ipn_url", "i"),
                ("cus_name", "n"),
                ("cus_email", "e"),
                ("cus_phone", "p"),
                ("product_name", "x"),
            ]),
            "http://sim/pay",
        );
        assert_eq!(answer["status"], "SUCCESS");
        answer["sessionkey"].as_str().unwrap_or_default().to_owned()
    }

    #[test]
    fn a_paid_session_posts_a_signed_ipn_and_validates() {
        let sim = Simulator::new("store", "pw");
        let key = session(&sim);
        let out = sim.act(&key, "pay", None).expect("pays");
        assert_eq!((out.ipn_url.as_str(), out.redirect.as_str()), ("i", "s"));
        assert_eq!(verify(&out.ipn, "pw"), Ok(()));
        let val_id = get(&out.ipn, "val_id").to_owned();
        let creds = [("store_id", "store"), ("store_passwd", "pw")];
        let v = sim.validate(&form(&[creds[0], creds[1], ("val_id", &val_id)]));
        assert_eq!(
            (v["status"].as_str(), v["amount"].as_str()),
            (Some("VALID"), Some("12.50"))
        );
        let again = sim.validate(&form(&[creds[0], creds[1], ("val_id", &val_id)]));
        assert_eq!(again["status"], "VALIDATED");
        assert!(sim.act(&key, "fail", None).is_err(), "over");
        let wrong = sim.validate(&form(&[
            ("store_id", "store"),
            ("store_passwd", "x"),
            ("val_id", &val_id),
        ]));
        assert_eq!(wrong["status"], "INVALID_TRANSACTION");
    }

    #[test]
    fn tampering_is_reported_consistently() {
        let sim = Simulator::new("store", "pw");
        let key = session(&sim);
        let out = sim.act(&key, "pay", Some("amount")).expect("pays");
        assert_eq!(get(&out.ipn, "amount"), "13.50");
        assert_eq!(verify(&out.ipn, "pw"), Ok(()));
        let q = sim.merchant_api(&form(&[
            ("store_id", "store"),
            ("store_passwd", "pw"),
            ("tran_id", "D1"),
        ]));
        assert_eq!(q["element"][0]["amount"], "13.50");
    }

    #[test]
    fn refunds_go_through_processing_and_stay_within_the_payment() {
        let sim = Simulator::new("store", "pw");
        let key = session(&sim);
        let out = sim.act(&key, "pay", None).expect("pays");
        let bank = get(&out.ipn, "bank_tran_id").to_owned();
        let creds = [("store_id", "store"), ("store_passwd", "pw")];
        let too_much = sim.merchant_api(&form(&[
            creds[0],
            creds[1],
            ("bank_tran_id", &bank),
            ("refund_amount", "12.51"),
        ]));
        assert_eq!(too_much["status"], "failed");
        let r = sim.merchant_api(&form(&[
            creds[0],
            creds[1],
            ("bank_tran_id", &bank),
            ("refund_amount", "2.50"),
        ]));
        assert_eq!(r["status"], "success");
        let id = r["refund_ref_id"].as_str().unwrap_or_default().to_owned();
        let first = sim.merchant_api(&form(&[creds[0], creds[1], ("refund_ref_id", &id)]));
        let second = sim.merchant_api(&form(&[creds[0], creds[1], ("refund_ref_id", &id)]));
        assert_eq!(
            (first["status"].as_str(), second["status"].as_str()),
            (Some("processing"), Some("refunded"))
        );
        let rest = sim.merchant_api(&form(&[
            creds[0],
            creds[1],
            ("bank_tran_id", &bank),
            ("refund_amount", "10.01"),
        ]));
        assert_eq!(rest["status"], "failed");
    }
}
