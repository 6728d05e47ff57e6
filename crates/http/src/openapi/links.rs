//! OpenAPI links: how the answer of one operation feeds the next — create → read → update →
//! act — for the catalogue, stock, purchasing and sales routes. They tell a client which calls
//! follow which, and let a stateful fuzzer (schemathesis's stateful phase) chain real ids
//! through sequences instead of trying every call alone with ids that exist nowhere.

use serde_json::{Value, json};

/// One link: from the `status` response of `from`, to the operation `to`, passing `parameters`
/// (target parameter → runtime expression) and, when given, fields of the request body.
pub struct LinkSpec {
    pub from: (&'static str, &'static str, &'static str),
    pub name: &'static str,
    pub to: (&'static str, &'static str),
    pub parameters: &'static [(&'static str, &'static str)],
    pub body: &'static [(&'static str, &'static str)],
}

const BY_ID: &[(&str, &str)] = &[("path.id", "$response.body#/id")];
const SAME_ID: &[(&str, &str)] = &[("path.id", "$request.path.id")];
const NONE: &[(&str, &str)] = &[];

const fn link(
    from: (&'static str, &'static str, &'static str),
    name: &'static str,
    to: (&'static str, &'static str),
    parameters: &'static [(&'static str, &'static str)],
) -> LinkSpec {
    LinkSpec {
        from,
        name,
        to,
        parameters,
        body: NONE,
    }
}

const fn link_body(
    from: (&'static str, &'static str, &'static str),
    name: &'static str,
    to: (&'static str, &'static str),
    body: &'static [(&'static str, &'static str)],
) -> LinkSpec {
    LinkSpec {
        from,
        name,
        to,
        parameters: NONE,
        body,
    }
}

const CREATE_CATEGORY: (&str, &str, &str) = ("post", "/api/v1/categories", "201");
const CREATE_PRODUCT: (&str, &str, &str) = ("post", "/api/v1/products", "201");
const CREATE_LOCATION: (&str, &str, &str) = ("post", "/api/v1/locations", "201");
const ADJUST: (&str, &str, &str) = ("post", "/api/v1/stock/adjustments", "201");
const CREATE_TRANSFER: (&str, &str, &str) = ("post", "/api/v1/stock/transfers", "201");
const CREATE_COUNT: (&str, &str, &str) = ("post", "/api/v1/stock/counts", "201");
const CREATE_SUPPLIER: (&str, &str, &str) = ("post", "/api/v1/suppliers", "201");
const CREATE_PO: (&str, &str, &str) = ("post", "/api/v1/purchase-orders", "201");
const SUBMIT_PO: (&str, &str, &str) = ("post", "/api/v1/purchase-orders/{id}/submit", "200");
const APPROVE_PO: (&str, &str, &str) = ("post", "/api/v1/purchase-orders/{id}/approve", "200");
const SEND_PO: (&str, &str, &str) = ("post", "/api/v1/purchase-orders/{id}/send", "200");
const RECEIVE_PO: (&str, &str, &str) = ("post", "/api/v1/purchase-orders/{id}/receive", "200");
const CREATE_CUSTOMER: (&str, &str, &str) = ("post", "/api/v1/customers", "201");
const CREATE_SO: (&str, &str, &str) = ("post", "/api/v1/sales-orders", "201");
const CONFIRM_SO: (&str, &str, &str) = ("post", "/api/v1/sales-orders/{id}/confirm", "200");
const FULFIL_SO: (&str, &str, &str) = ("post", "/api/v1/sales-orders/{id}/fulfil", "200");

const CATEGORY: &str = "/api/v1/categories/{id}";
const PRODUCT: &str = "/api/v1/products/{id}";
const LOCATION: &str = "/api/v1/locations/{id}";
const SUPPLIER: &str = "/api/v1/suppliers/{id}";
const PO: &str = "/api/v1/purchase-orders/{id}";
const CUSTOMER: &str = "/api/v1/customers/{id}";
const SO: &str = "/api/v1/sales-orders/{id}";

/// Every link the document carries.
pub const LINKS: &[LinkSpec] = &[
    // Catalogue: a created category, product or location is read, edited, used, deleted.
    link(CREATE_CATEGORY, "GetCategory", ("get", CATEGORY), BY_ID),
    link(
        CREATE_CATEGORY,
        "UpdateCategory",
        ("patch", CATEGORY),
        BY_ID,
    ),
    link(
        CREATE_CATEGORY,
        "DeleteCategory",
        ("delete", CATEGORY),
        BY_ID,
    ),
    link_body(
        CREATE_CATEGORY,
        "CreateProductInCategory",
        ("post", "/api/v1/products"),
        &[("category_id", "$response.body#/id")],
    ),
    link(CREATE_PRODUCT, "GetProduct", ("get", PRODUCT), BY_ID),
    link(CREATE_PRODUCT, "UpdateProduct", ("patch", PRODUCT), BY_ID),
    link(CREATE_PRODUCT, "DeleteProduct", ("delete", PRODUCT), BY_ID),
    link_body(
        CREATE_PRODUCT,
        "AdjustProductStock",
        ("post", "/api/v1/stock/adjustments"),
        &[("product_id", "$response.body#/id")],
    ),
    link(CREATE_LOCATION, "GetLocation", ("get", LOCATION), BY_ID),
    link(
        CREATE_LOCATION,
        "UpdateLocation",
        ("patch", LOCATION),
        BY_ID,
    ),
    link(
        CREATE_LOCATION,
        "DeleteLocation",
        ("delete", LOCATION),
        BY_ID,
    ),
    link_body(
        CREATE_LOCATION,
        "AdjustStockAtLocation",
        ("post", "/api/v1/stock/adjustments"),
        &[("location_id", "$response.body#/id")],
    ),
    // Stock: an adjustment's level names its product and location; a transfer or a count is
    // read back.
    link(
        ADJUST,
        "GetAdjustedProduct",
        ("get", PRODUCT),
        &[("path.id", "$response.body#/level/product_id")],
    ),
    link(
        ADJUST,
        "GetAdjustedLocation",
        ("get", LOCATION),
        &[("path.id", "$response.body#/level/location_id")],
    ),
    link_body(
        ADJUST,
        "AdjustAgain",
        ("post", "/api/v1/stock/adjustments"),
        &[
            ("product_id", "$response.body#/level/product_id"),
            ("location_id", "$response.body#/level/location_id"),
        ],
    ),
    link(
        CREATE_TRANSFER,
        "GetTransfer",
        ("get", "/api/v1/stock/transfers/{id}"),
        BY_ID,
    ),
    link(
        CREATE_COUNT,
        "GetCount",
        ("get", "/api/v1/stock/counts/{id}"),
        BY_ID,
    ),
    // Purchasing: supplier → order → submit → approve → send → receive → close.
    link(CREATE_SUPPLIER, "GetSupplier", ("get", SUPPLIER), BY_ID),
    link(
        CREATE_SUPPLIER,
        "UpdateSupplier",
        ("patch", SUPPLIER),
        BY_ID,
    ),
    link(
        CREATE_SUPPLIER,
        "DeleteSupplier",
        ("delete", SUPPLIER),
        BY_ID,
    ),
    link_body(
        CREATE_SUPPLIER,
        "OrderFromSupplier",
        ("post", "/api/v1/purchase-orders"),
        &[("supplier_id", "$response.body#/id")],
    ),
    link(CREATE_PO, "GetPurchaseOrder", ("get", PO), BY_ID),
    link(CREATE_PO, "UpdatePurchaseOrder", ("patch", PO), BY_ID),
    link(
        CREATE_PO,
        "SubmitPurchaseOrder",
        ("post", "/api/v1/purchase-orders/{id}/submit"),
        BY_ID,
    ),
    link(
        CREATE_PO,
        "CancelPurchaseOrder",
        ("post", "/api/v1/purchase-orders/{id}/cancel"),
        BY_ID,
    ),
    link(
        SUBMIT_PO,
        "ApprovePurchaseOrder",
        ("post", "/api/v1/purchase-orders/{id}/approve"),
        SAME_ID,
    ),
    link(SUBMIT_PO, "GetSubmittedPurchaseOrder", ("get", PO), SAME_ID),
    link(
        APPROVE_PO,
        "SendPurchaseOrder",
        ("post", "/api/v1/purchase-orders/{id}/send"),
        SAME_ID,
    ),
    link(
        SEND_PO,
        "ReceivePurchaseOrder",
        ("post", "/api/v1/purchase-orders/{id}/receive"),
        SAME_ID,
    ),
    link(
        SEND_PO,
        "CancelSentPurchaseOrder",
        ("post", "/api/v1/purchase-orders/{id}/cancel"),
        SAME_ID,
    ),
    link(
        RECEIVE_PO,
        "ListReceipts",
        ("get", "/api/v1/purchase-orders/{id}/receipts"),
        SAME_ID,
    ),
    link(
        RECEIVE_PO,
        "ReceiveMore",
        ("post", "/api/v1/purchase-orders/{id}/receive"),
        SAME_ID,
    ),
    link(
        RECEIVE_PO,
        "ClosePurchaseOrder",
        ("post", "/api/v1/purchase-orders/{id}/close"),
        SAME_ID,
    ),
    // Sales: customer → order → confirm → fulfil → return; payments against the order.
    link(CREATE_CUSTOMER, "GetCustomer", ("get", CUSTOMER), BY_ID),
    link(
        CREATE_CUSTOMER,
        "UpdateCustomer",
        ("patch", CUSTOMER),
        BY_ID,
    ),
    link(
        CREATE_CUSTOMER,
        "DeleteCustomer",
        ("delete", CUSTOMER),
        BY_ID,
    ),
    link(
        CREATE_CUSTOMER,
        "AddContact",
        ("post", "/api/v1/customers/{id}/contacts"),
        BY_ID,
    ),
    link(
        CREATE_CUSTOMER,
        "LogActivity",
        ("post", "/api/v1/customers/{id}/activities"),
        BY_ID,
    ),
    link_body(
        CREATE_CUSTOMER,
        "SellToCustomer",
        ("post", "/api/v1/sales-orders"),
        &[("customer_id", "$response.body#/id")],
    ),
    link(CREATE_SO, "GetSalesOrder", ("get", SO), BY_ID),
    link(CREATE_SO, "UpdateSalesOrder", ("patch", SO), BY_ID),
    link(
        CREATE_SO,
        "ConfirmSalesOrder",
        ("post", "/api/v1/sales-orders/{id}/confirm"),
        BY_ID,
    ),
    link(
        CREATE_SO,
        "CancelSalesOrder",
        ("post", "/api/v1/sales-orders/{id}/cancel"),
        BY_ID,
    ),
    link(
        CONFIRM_SO,
        "FulfilSalesOrder",
        ("post", "/api/v1/sales-orders/{id}/fulfil"),
        SAME_ID,
    ),
    link(
        CONFIRM_SO,
        "PayForSalesOrder",
        ("post", "/api/v1/sales-orders/{id}/payments"),
        SAME_ID,
    ),
    link(
        CONFIRM_SO,
        "CancelConfirmedSalesOrder",
        ("post", "/api/v1/sales-orders/{id}/cancel"),
        SAME_ID,
    ),
    link(
        FULFIL_SO,
        "ReturnFromSalesOrder",
        ("post", "/api/v1/sales-orders/{id}/returns"),
        SAME_ID,
    ),
    link(
        FULFIL_SO,
        "ListReturns",
        ("get", "/api/v1/sales-orders/{id}/returns"),
        SAME_ID,
    ),
    link(
        FULFIL_SO,
        "ListPayments",
        ("get", "/api/v1/sales-orders/{id}/payments"),
        SAME_ID,
    ),
];

/// Writes [`LINKS`] into the document's responses, naming each target by its `operationId`.
/// A link whose source response or target operation is missing is left out (the unit tests
/// keep the table and the routes in step).
pub fn add(json: &mut Value) {
    for spec in LINKS {
        let (method, path) = spec.to;
        let Some(operation_id) = json["paths"][path][method]["operationId"]
            .as_str()
            .map(str::to_owned)
        else {
            continue;
        };
        let (from_method, from_path, status) = spec.from;
        let Some(response) = json["paths"][from_path][from_method]["responses"]
            .get_mut(status)
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        // `parameters` is always present, if empty: utoipa reads a link back only with it.
        let mut link = json!({
            "operationId": operation_id,
            "parameters": expressions(spec.parameters),
        });
        if !spec.body.is_empty() {
            link["requestBody"] = expressions(spec.body);
        }
        let links = response.entry("links").or_insert_with(|| json!({}));
        links[spec.name] = link;
    }
}

/// `{name: runtime expression}` as a JSON object.
fn expressions(pairs: &[(&str, &str)]) -> Value {
    pairs
        .iter()
        .map(|(name, expression)| ((*name).to_owned(), json!(expression)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_link_joins_a_real_response_to_a_real_operation() {
        let json = serde_json::to_value(crate::openapi()).unwrap_or_default();
        for spec in LINKS {
            let (method, path, status) = spec.from;
            let response = &json["paths"][path][method]["responses"][status];
            assert!(
                response.is_object(),
                "{}: no {status} response of {method} {path}",
                spec.name
            );
            let (to_method, to_path) = spec.to;
            let target = &json["paths"][to_path][to_method];
            let link = &response["links"][spec.name];
            assert_eq!(
                link["operationId"], target["operationId"],
                "{}: {to_method} {to_path} is not linked",
                spec.name
            );
            for (name, _) in spec.parameters {
                let name = name.trim_start_matches("path.");
                let declared = target["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path"));
                assert!(
                    declared,
                    "{}: {to_path} has no path parameter {name}",
                    spec.name
                );
            }
            if !spec.body.is_empty() {
                assert!(
                    target["requestBody"].is_object(),
                    "{}: {to_path} takes no body",
                    spec.name
                );
            }
        }
    }

    #[test]
    fn a_body_link_names_fields_the_target_takes() {
        let json = serde_json::to_value(crate::openapi()).unwrap_or_default();
        for spec in LINKS.iter().filter(|s| !s.body.is_empty()) {
            let (method, path) = spec.to;
            let reference =
                json["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
                    ["$ref"]
                    .as_str()
                    .unwrap_or_default();
            let schema =
                &json["components"]["schemas"][reference.rsplit('/').next().unwrap_or_default()];
            for (field, _) in spec.body {
                assert!(
                    schema["properties"][field].is_object(),
                    "{}: {method} {path} takes no {field}",
                    spec.name
                );
            }
        }
    }
}
