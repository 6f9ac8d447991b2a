//! `#[derive(Params)]` for the pricing-rule SDK: a struct's fields become the rule's declared
//! parameters. Documented, with examples, in `pricing_rule_sdk::params`; use it from there.
//!
//! Every mistake is a compile error at the tokens at fault: an unsupported field type at the
//! type, an unknown `#[param(...)]` key at the key, a tuple struct or enum at its name.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Expr, Fields, GenericArgument, Lit, Meta, PathArguments, Type, parse_macro_input};

/// The field types a parameter may have (the last segment of the type's path).
const SUPPORTED: [&str; 5] = ["i64", "Minor", "Bps", "bool", "String"];

#[proc_macro_derive(Params, attributes(param))]
pub fn derive_params(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// One field's `#[param(...)]` settings.
#[derive(Default)]
struct Settings {
    default: Option<Expr>,
    min: Option<Expr>,
    max: Option<Expr>,
    max_bytes: Option<Expr>,
    one_of: Option<Expr>,
}

fn expand(input: &DeriveInput) -> syn::Result<Tokens> {
    let name = &input.ident;
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new(name.span(), "`Params` derives only for a struct with named fields"));
    };
    let Fields::Named(fields) = &data.fields else {
        return Err(syn::Error::new(name.span(), "`Params` derives only for a struct with named fields"));
    };
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new(input.generics.span(), "a `Params` struct cannot be generic"));
    }
    let sdk = quote!(::pricing_rule_sdk::params);
    let mut specs = Vec::new();
    let mut reads = Vec::new();
    for field in &fields.named {
        let ident = field.ident.as_ref().expect("named fields have names");
        let param = ident.to_string();
        let (inner, optional) = parameter_type(&field.ty)?;
        let settings = settings(field)?;
        let description = doc_comment(field);
        let opt = |e: &Option<Expr>| match e {
            Some(e) => quote!(::core::option::Option::Some(#e)),
            None => quote!(::core::option::Option::None),
        };
        let (min, max) = (opt(&settings.min), opt(&settings.max));
        let max_bytes = opt(&settings.max_bytes);
        let default_value = match &settings.default {
            Some(e) => {
                let span = e.span();
                quote_spanned!(span=> ::core::option::Option::Some(<#inner as ::core::convert::From<_>>::from(#e)))
            }
            None => quote!(::core::option::Option::<#inner>::None),
        };
        let kind = match &settings.one_of {
            Some(list) => {
                if !is_text(inner) {
                    return Err(syn::Error::new(list.span(), "`one_of` is for `String` parameters"));
                }
                quote!(#sdk::ParamKind::OneOf(
                    (#list).into_iter().map(|s: &str| ::std::string::String::from(s)).collect()
                ))
            }
            None => quote!(<#inner as #sdk::ParamType>::kind(#sdk::Bounds { min: #min, max: #max }, #max_bytes)),
        };
        specs.push(quote! {
            #sdk::ParamSpec {
                name: ::std::string::String::from(#param),
                kind: #kind,
                default: (#default_value).map(|d: #inner| #sdk::ParamType::to_value(&d)),
                optional: #optional,
                description: ::std::string::String::from(#description),
            }
        });
        let read = quote!(#sdk::read_field::<#inner>(params, #param, #default_value)?);
        reads.push(if optional {
            quote!(#ident: #read)
        } else {
            let missing = format!("parameter `{param}` is required and not set");
            quote!(#ident: #read.ok_or_else(|| ::std::string::String::from(#missing))?)
        });
    }
    Ok(quote! {
        // A default of the field's own type goes through `From` like any other.
        #[automatically_derived]
        #[allow(clippy::useless_conversion)]
        impl #sdk::Params for #name {
            fn schema() -> ::std::vec::Vec<#sdk::ParamSpec> {
                ::std::vec![#(#specs),*]
            }

            fn from_params(
                params: &[(::std::string::String, ::pricing_rule_sdk::Value)],
            ) -> ::core::result::Result<Self, ::std::string::String> {
                ::core::result::Result::Ok(Self { #(#reads),* })
            }
        }
    })
}

/// The parameter's type, and whether it is optional (`Option<T>`); an error at the type when
/// it is not one the SDK supports.
fn parameter_type(ty: &Type) -> syn::Result<(&Type, bool)> {
    let unsupported = || {
        syn::Error::new(
            ty.span(),
            format!(
                "unsupported parameter type `{}`: use i64, Minor, Bps, bool, String, or an Option of one",
                quote!(#ty).to_string().replace(' ', "")
            ),
        )
    };
    let Some(last) = last_segment(ty) else { return Err(unsupported()) };
    if last.ident == "Option" {
        let PathArguments::AngleBracketed(args) = &last.arguments else { return Err(unsupported()) };
        let Some(GenericArgument::Type(inner)) = args.args.first() else { return Err(unsupported()) };
        return match last_segment(inner) {
            Some(seg) if SUPPORTED.contains(&seg.ident.to_string().as_str()) && seg.arguments.is_empty() => {
                Ok((inner, true))
            }
            _ => Err(syn::Error::new(
                inner.span(),
                format!(
                    "unsupported parameter type `{}`: use i64, Minor, Bps, bool or String inside the Option",
                    quote!(#inner).to_string().replace(' ', "")
                ),
            )),
        };
    }
    if SUPPORTED.contains(&last.ident.to_string().as_str()) && last.arguments.is_empty() {
        Ok((ty, false))
    } else {
        Err(unsupported())
    }
}

fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(path) if path.qself.is_none() => path.path.segments.last(),
        _ => None,
    }
}

fn is_text(ty: &Type) -> bool {
    last_segment(ty).is_some_and(|seg| seg.ident == "String")
}

fn settings(field: &syn::Field) -> syn::Result<Settings> {
    let mut settings = Settings::default();
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("param")) {
        attr.parse_nested_meta(|meta| {
            let key = meta.path.get_ident().map(ToString::to_string).unwrap_or_default();
            let slot = match key.as_str() {
                "default" => &mut settings.default,
                "min" => &mut settings.min,
                "max" => &mut settings.max,
                "max_bytes" => &mut settings.max_bytes,
                "one_of" => &mut settings.one_of,
                _ => {
                    return Err(meta.error("unknown parameter setting: use default, min, max, max_bytes or one_of"));
                }
            };
            if slot.is_some() {
                return Err(meta.error(format!("`{key}` is given twice")));
            }
            *slot = Some(meta.value()?.parse()?);
            Ok(())
        })?;
    }
    Ok(settings)
}

/// The field's doc comment, joined into one line.
fn doc_comment(field: &syn::Field) -> String {
    let mut lines = Vec::new();
    for attr in &field.attrs {
        if let Meta::NameValue(nv) = &attr.meta
            && nv.path.is_ident("doc")
            && let Expr::Lit(lit) = &nv.value
            && let Lit::Str(s) = &lit.lit
        {
            lines.push(s.value().trim().to_owned());
        }
    }
    lines.join(" ").trim().to_owned()
}
