//! The sign-in pages (DESIGN §7): the address form, "a link is on its way", the "Sign in as …"
//! confirmation behind an emailed or local sign-in link (only its `POST` signs in: mail scanners
//! fetch links), a refused sign-in, and the "signed in as … / Sign out" bar of the overview.
//! Built with `maud`: every interpolated value is escaped at compile time.

use maud::{Markup, html};

use super::{FIELD_CSRF, layout};

/// The sign-in form's address field.
pub const FIELD_EMAIL: &str = "email";

/// `GET /signin`: enter your address (and, with OIDC configured, the single sign-on button).
pub fn sign_in_page(oidc: bool) -> String {
    let body = html! {
        h1 { "Sign in to patchday" }
        @if oidc {
            div.notice {
                p { "Sign in with your organisation's account:" }
                p { a href="/signin/oidc" { "Sign in with single sign-on" } }
            }
            h2 { "Or get a sign-in link by email" }
        }
        form.notice method="post" action="/signin" {
            p {
                label for=(FIELD_EMAIL) { "Your email address" }
                br;
                input type="email" id=(FIELD_EMAIL) name=(FIELD_EMAIL) required
                    autocomplete="email" size="40";
            }
            p { button type="submit" { "Email me a sign-in link" } }
        }
        p.muted {
            "A link is sent only to an address that holds a role here. It works once, for 15 \
             minutes. The operator of this machine can also run "
            code { "patchday login-url" }
            "."
        }
    };
    layout("Sign in", &body.into_string())
}

/// After `POST /signin`: the same answer whether or not the address may sign in.
pub fn link_sent_page(email: &str) -> String {
    let body = html! {
        h1 { "Check your email" }
        div.notice.done {
            p { "If " strong { (email) } " may sign in here, a sign-in link is on its way to it." }
            p { "The link works once, for 15 minutes. Open it in this browser." }
        }
    };
    layout("Check your email", &body.into_string())
}

/// `GET /signin/{token}`: what the link would do; only the button's `POST` signs in.
pub fn confirm_page(email: &str, action: &str, csrf: &str) -> String {
    let title = format!("Sign in as {email}?");
    let body = html! {
        h1 { (title) }
        form.notice method="post" action=(action) {
            input type="hidden" name=(FIELD_CSRF) value=(csrf);
            p { "This link signs you in once. Your session lasts until you sign out, 12 hours \
                 without use, or 7 days." }
            p { button type="submit" { "Sign in" } }
        }
    };
    layout(&title, &body.into_string())
}

/// A sign-in link or form that did not sign in.
pub fn refused_page(title: &str, explanation: &str, code: &str) -> String {
    let body = html! {
        h1 { (title) }
        div.notice.error {
            p { (explanation) }
            p { "Nobody was signed in. " a href="/signin" { "Sign in again" } "." }
        }
        p.muted { "Reason code: " code { (code) } }
    };
    layout(title, &body.into_string())
}

/// A link of an approval with `sign_in: required`, posted by someone not signed in as its
/// recipient.
pub fn sign_in_first_page(recipient: &str) -> String {
    let body = html! {
        h1 { "Sign in first" }
        div.notice.error {
            p { "This approval is decided only by " strong { (recipient) } " signed in to patchday, \
                 so a forwarded email cannot decide it." }
            p { strong { "Nothing was changed." } " " a href="/signin" { "Sign in" } ", then open the \
                 link from your email again." }
        }
        p.muted { "Reason code: " code { "sign_in_required" } }
    };
    layout("Sign in first", &body.into_string())
}

/// The overview's bar: who is signed in, in which role, and the sign-out form.
pub fn signed_in_bar(email: &str, role: &str, csrf: &str) -> Markup {
    html! {
        form.notice method="post" action="/signout" {
            input type="hidden" name=(FIELD_CSRF) value=(csrf);
            "Signed in as " strong { (email) } " (" (role) "). "
            button.danger type="submit" { "Sign out" }
            " " a href="/sessions" { "Sessions" }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        let page = confirm_page("<b>@x", "/signin/t", "c\"s");
        assert!(page.contains("Sign in as &lt;b&gt;@x?"), "{page}");
        assert!(page.contains("value=\"c&quot;s\""), "{page}");
        assert!(!page.contains("<b>@x"));
        let bar = signed_in_bar("a@x", "viewer", "c").into_string();
        assert!(
            bar.contains("action=\"/signout\"") && bar.contains("a@x"),
            "{bar}"
        );
    }
}
