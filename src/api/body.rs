//! `JsonBody<T>`: the request body of every JSON route, read strictly by its documented schema.
//!
//! poem-openapi's `Json<T>` takes `123`, `true` or `1.5` where a string is declared and stores
//! it as `"123"`, so the document says one thing and the server accepts another. `JsonBody`
//! first checks the parsed value against `T`'s registered schema — wherever the schema declares
//! a string, the value must be a JSON string (or `null`, which the field's own type then
//! accepts or refuses) — and answers `400 validation_failed` naming the field otherwise. Bytes
//! that are not JSON at all stay `400 malformed_json`. The other scalar types are already
//! strict in poem-openapi.

use std::any::TypeId;
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;
use poem::{FromRequest, Request, RequestBody};
use poem_openapi::impl_apirequest_for_payload;
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, Type};
use serde_json::Value;

use crate::core::error::{AppError, Code};

/// A JSON request body of type `T`, checked against `T`'s schema before it is parsed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JsonBody<T>(pub T);

impl<T> Deref for JsonBody<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for JsonBody<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: Type> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn check_content_type(content_type: &str) -> bool {
        <poem_openapi::payload::Json<T> as Payload>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: ParseFromJSON + 'static> ParsePayload for JsonBody<T> {
    const IS_REQUIRED: bool = T::IS_REQUIRED;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let data = Vec::<u8>::from_request(request, body).await?;
        let value = if data.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&data).map_err(|e| {
                AppError::new(Code::MalformedJson, format!("the body is not JSON: {e}"))
            })?
        };
        shape_of::<T>().check(&value, "")?;
        let parsed =
            T::parse_from_json(Some(value)).map_err(|e| AppError::validation(e.into_message()))?;
        Ok(JsonBody(parsed))
    }
}

impl_apirequest_for_payload!(JsonBody<T>, T: ParseFromJSON + 'static);

/// Where a schema declares strings: all the checking poem-openapi leaves undone.
#[derive(Debug)]
enum Shape {
    String,
    Object(Vec<(&'static str, Shape)>),
    Array(Box<Shape>),
    /// Numbers, booleans, free-form values: poem-openapi checks them itself.
    Other,
}

impl Shape {
    fn of(schema: &MetaSchemaRef, registry: &Registry, depth: usize) -> Shape {
        // Schemas here are request bodies a few levels deep; a cycle would only stop checking.
        if depth > 16 {
            return Shape::Other;
        }
        let schema = match schema {
            MetaSchemaRef::Inline(s) => &**s,
            MetaSchemaRef::Reference(name) => match registry.schemas.get(name) {
                Some(s) => s,
                None => return Shape::Other,
            },
        };
        // `Option<T>` and friends wrap `T` in a one-element `allOf`/`anyOf`.
        if let [only] = schema.all_of.as_slice() {
            return Shape::of(only, registry, depth + 1);
        }
        match schema.ty {
            "string" => Shape::String,
            "array" => match &schema.items {
                Some(items) => Shape::Array(Box::new(Shape::of(items, registry, depth + 1))),
                None => Shape::Other,
            },
            "object" => Shape::Object(
                schema
                    .properties
                    .iter()
                    .map(|(name, s)| (*name, Shape::of(s, registry, depth + 1)))
                    .collect(),
            ),
            _ => Shape::Other,
        }
    }

    /// Refuses a non-string where a string is declared; `path` names the field.
    fn check(&self, value: &Value, path: &str) -> Result<(), AppError> {
        match (self, value) {
            (_, Value::Null) | (Shape::Other, _) => Ok(()),
            (Shape::String, Value::String(_)) => Ok(()),
            (Shape::String, other) => Err(AppError::validation(format!(
                "`{}` must be a string, not {}",
                if path.is_empty() { "the body" } else { path },
                kind(other)
            ))),
            (Shape::Object(fields), Value::Object(map)) => {
                for (name, shape) in fields {
                    if let Some(v) = map.get(*name) {
                        let path = if path.is_empty() {
                            (*name).to_owned()
                        } else {
                            format!("{path}.{name}")
                        };
                        shape.check(v, &path)?;
                    }
                }
                Ok(())
            }
            (Shape::Array(items), Value::Array(values)) => {
                for (i, v) in values.iter().enumerate() {
                    items.check(v, &format!("{path}[{i}]"))?;
                }
                Ok(())
            }
            // A wrong container type is refused by the parser with its own message.
            _ => Ok(()),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `T`'s shape, worked out from its schema once per type.
fn shape_of<T: Type + 'static>() -> Arc<Shape> {
    static SHAPES: OnceLock<RwLock<HashMap<TypeId, Arc<Shape>>>> = OnceLock::new();
    let shapes = SHAPES.get_or_init(Default::default);
    if let Some(shape) = shapes.read().get(&TypeId::of::<T>()) {
        return shape.clone();
    }
    let mut registry = Registry::new();
    T::register(&mut registry);
    let shape = Arc::new(Shape::of(&T::schema_ref(), &registry, 0));
    shapes.write().insert(TypeId::of::<T>(), shape.clone());
    shape
}
