//! The pages and mails of the self-service reset (minijinja templates in `templates/`, compiled
//! into the binary; `.html` templates are HTML-escaped), and sending through the report's
//! transport (`smtp.url`, or the file transport when it is empty).

use std::sync::OnceLock;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncTransport, Message};
use minijinja::{Environment, Value};

use crate::reporting::deliver::Transport;

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("templates/layout.html")),
    ("request.html", include_str!("templates/request.html")),
    ("sent.html", include_str!("templates/sent.html")),
    ("reset.html", include_str!("templates/reset.html")),
    ("done.html", include_str!("templates/done.html")),
    ("invalid.html", include_str!("templates/invalid.html")),
    ("link_mail.html", include_str!("templates/link_mail.html")),
    ("link_mail.txt", include_str!("templates/link_mail.txt")),
    ("done_mail.html", include_str!("templates/done_mail.html")),
    ("done_mail.txt", include_str!("templates/done_mail.txt")),
];

fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .expect("self-service templates parse (checked by tests)");
        }
        env
    })
}

/// Renders a template; a rendering error is a bug, logged, and shown as a plain sentence.
pub fn render(name: &str, ctx: Value) -> String {
    environment()
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .unwrap_or_else(|e| {
            tracing::error!(template = name, error = %e, "self-service template failed");
            "Something went wrong; please try again later.".into()
        })
}

/// A text + HTML mail from the `<stem>.txt` / `<stem>.html` templates.
pub fn build(
    stem: &str,
    ctx: Value,
    subject: &str,
    from: &Mailbox,
    to: Mailbox,
) -> Result<Message, lettre::error::Error> {
    let text = render(&format!("{stem}.txt"), ctx.clone());
    let html = render(&format!("{stem}.html"), ctx);
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject)
        .multipart(MultiPart::alternative_plain_html(text, html))
}

/// Sends one mail. The error says what failed, never the message (it may carry a link).
pub async fn send(transport: &Transport, message: Message) -> Result<(), String> {
    match transport {
        Transport::Smtp(t) => t.send(message).await.map(|_| ()).map_err(|e| e.to_string()),
        Transport::File(t, dir) => {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            t.send(message).await.map(|_| ()).map_err(|e| e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    #[test]
    fn every_template_renders_and_html_is_escaped() {
        for (name, _) in TEMPLATES {
            let out = render(
                name,
                context! { login => "<b>x</b>", name => "J", link => "http://l", ttl_minutes => 15,
                token => "t", csrf => "c", factors => Vec::<String>::new(),
                count => 1, reason => "r", support_contact => "help" },
            );
            assert!(!out.contains("Something went wrong"), "{name}: {out}");
            if name.ends_with(".html") {
                assert!(!out.contains("<b>x</b>"), "{name} escapes");
                assert!(!out.contains("<script"), "{name} has no script");
            }
        }
    }
}
