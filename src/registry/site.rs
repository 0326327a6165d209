//! The registry's static web site: a home page whose search box ranks as `cloudlet:search`
//! does, and one page per cloudlet (README, versions, scenarios and parameters, the install
//! command). Everything it needs is in the directory; pages work without JavaScript, which
//! only drives the search box and the copy buttons.

use std::fmt::Write as _;
use std::path::Path;

use super::build::{Published, page_path};
use super::{IndexScenario, RegistryEntry};
use crate::error::{Error, IoContext, Result};

const STYLE: &str = include_str!("site/style.css");
const SCRIPT: &str = include_str!("site/site.js");
/// Cloudlets listed on the home page (and on each browse page) before any search.
const PAGE_SIZE: usize = 200;

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A link target that cannot run script: http(s), mailto, fragments and relative paths.
fn safe_href(url: &str) -> Option<&str> {
    let t = url.trim();
    let lower = t.to_ascii_lowercase();
    let scheme_end = t.find(':');
    let first_sep = t.find(['/', '?', '#']);
    let relative = match (scheme_end, first_sep) {
        (None, _) => true,
        (Some(c), Some(s)) => s < c,
        (Some(_), None) => false,
    };
    (lower.starts_with("https://")
        || lower.starts_with("http://")
        || lower.starts_with("mailto:")
        || relative)
        .then_some(t)
}

/// Renders a README: Markdown to HTML with raw HTML shown as text, links that cannot run
/// script, and images as links (a page loads nothing from elsewhere).
pub fn markdown(md: &str) -> String {
    use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let events = Parser::new_ext(md, options).map(|event| match event {
        Event::Html(t) | Event::InlineHtml(t) => Event::Text(t),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: CowStr::from(safe_href(&dest_url).unwrap_or("#").to_string()),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: CowStr::from(safe_href(&dest_url).unwrap_or("#").to_string()),
            title,
            id,
        }),
        Event::End(TagEnd::Image) => Event::End(TagEnd::Link),
        other => other,
    });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

/// `../` repeated to climb from a page at `rel` back to the site root.
fn root_of(rel: &Path) -> String {
    "../".repeat(rel.components().count().saturating_sub(1))
}

fn page(root: &str, title: &str, body: &str, with_search: bool) -> String {
    let search = if with_search {
        format!("<script src=\"{root}search-data.js\" defer></script>")
    } else {
        String::new()
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<title>{title}</title>\n<link rel=\"stylesheet\" href=\"{root}style.css\">\n{search}\
<script src=\"{root}site.js\" defer></script>\n</head>\n<body>\n\
<header class=\"top\"><a class=\"brand\" href=\"{root}index.html\">nepho registry</a></header>\n\
<main>\n{body}</main>\n<footer>Built by <code>nepho registry:build</code>. \
Install any cloudlet with <code>nepho cloudlet:install NAME</code>.</footer>\n</body>\n</html>\n",
        title = esc(title),
    )
}

fn install_command(name: &str, reference: Option<&str>) -> String {
    match reference {
        Some(r) => format!("nepho cloudlet:install {name} --ref {r}"),
        None => format!("nepho cloudlet:install {name}"),
    }
}

/// A command with a copy button (shown only when JavaScript runs).
fn copyable(id: &str, command: &str) -> String {
    format!(
        "<div class=\"cmd\"><pre><code id=\"{id}\">{}</code></pre>\
<button type=\"button\" class=\"copy\" data-copy=\"{id}\" hidden>Copy</button></div>\n",
        esc(command)
    )
}

fn list_item(root: &str, e: &RegistryEntry) -> String {
    let href = page_path(&e.name).display().to_string();
    let mut s = format!("<li><a href=\"{root}{}\">{}</a>", esc(&href), esc(&e.name));
    if let Some(v) = &e.version {
        let _ = write!(s, " <span class=\"ver\">{}</span>", esc(v));
    }
    if let Some(summary) = &e.summary {
        let _ = write!(s, "<p>{}</p>", esc(summary));
    }
    if !e.tags.is_empty() {
        s.push_str(&tags_html(&e.tags));
    }
    s.push_str("</li>\n");
    s
}

/// The search data: one array per cloudlet, loaded as a script so the home page also
/// searches when opened from disk.
fn search_data(published: &[Published]) -> Result<String> {
    let items: Vec<serde_json::Value> = published
        .iter()
        .map(|p| {
            let e = &p.entry;
            serde_json::json!([
                e.name,
                e.summary.as_deref().unwrap_or(""),
                e.tags,
                e.description.as_deref().unwrap_or(""),
                e.version.as_deref().unwrap_or(""),
                page_path(&e.name).display().to_string(),
            ])
        })
        .collect();
    let json = serde_json::to_string(&items).map_err(|e| Error::Other(e.to_string()))?;
    // `</script>` cannot appear: `<` is escaped inside JSON strings.
    Ok(format!(
        "window.NEPHO_SEARCH = {};\n",
        json.replace('<', "\\u003c")
    ))
}

fn home(published: &[Published], pages: usize) -> String {
    let mut body = String::from(
        "<h1>Cloudlets</h1>\n<form class=\"search\" role=\"search\" action=\"#\" onsubmit=\"return false\">\
<label for=\"q\">Search cloudlets</label>\
<input id=\"q\" type=\"search\" autocomplete=\"off\" placeholder=\"name, tag or words from the summary\"></form>\n",
    );
    let _ = writeln!(
        body,
        "<p id=\"count\" aria-live=\"polite\">{} cloudlet{}</p>",
        published.len(),
        if published.len() == 1 { "" } else { "s" }
    );
    body.push_str("<ul id=\"results\" class=\"list\">\n");
    for p in published.iter().take(PAGE_SIZE) {
        body.push_str(&list_item("", &p.entry));
    }
    body.push_str("</ul>\n");
    if pages > 1 {
        body.push_str("<nav class=\"pages\" id=\"browse\">Browse all: ");
        for n in 1..=pages {
            let _ = write!(body, "<a href=\"browse/{n}.html\">{n}</a> ");
        }
        body.push_str("</nav>\n");
    }
    page("", "Cloudlets — nepho registry", &body, true)
}

fn browse_page(chunk: &[Published], n: usize, pages: usize) -> String {
    let mut body = format!("<h1>All cloudlets, page {n} of {pages}</h1>\n<ul class=\"list\">\n");
    for p in chunk {
        body.push_str(&list_item("../", &p.entry));
    }
    body.push_str("</ul>\n<nav class=\"pages\">");
    for k in 1..=pages {
        if k == n {
            let _ = write!(body, "<strong>{k}</strong> ");
        } else {
            let _ = write!(body, "<a href=\"{k}.html\">{k}</a> ");
        }
    }
    body.push_str("</nav>\n");
    page("../", &format!("Cloudlets, page {n}"), &body, false)
}

fn show_default(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn scenario_section(s: &IndexScenario) -> String {
    let mut out = format!(
        "<section class=\"scenario\" id=\"scenario-{id}\">\n<h3>{name} <span class=\"provider\">{provider}</span></h3>\n",
        id = esc(&s.name),
        name = esc(&s.name),
        provider = esc(&s.provider)
    );
    if let Some(summary) = &s.summary {
        let _ = writeln!(out, "<p>{}</p>", esc(summary));
    }
    if s.parameters.is_empty() {
        out.push_str("<p class=\"muted\">No parameters.</p>\n");
    } else {
        out.push_str(
            "<div class=\"scroll\"><table class=\"params\">\n<thead><tr><th>Parameter</th><th>Type</th><th>Default</th><th>Description</th></tr></thead>\n<tbody>\n",
        );
        for p in &s.parameters {
            let mut flags = String::new();
            if p.secret {
                flags.push_str(" <span class=\"badge secret\">secret</span>");
            }
            if p.required {
                flags.push_str(" <span class=\"badge required\">required</span>");
            }
            let default = match (&p.default, p.secret) {
                (_, true) => "<span class=\"muted\">hidden</span>".to_string(),
                (Some(v), false) => format!("<code>{}</code>", esc(&show_default(v))),
                (None, false) => "<span class=\"muted\">none</span>".to_string(),
            };
            let _ = writeln!(
                out,
                "<tr class=\"param\" data-param=\"{n}\"><td><code>{n}</code>{flags}</td><td>{t}</td><td>{default}</td><td>{d}</td></tr>",
                n = esc(&p.name),
                t = esc(p.ty.as_deref().unwrap_or("any")),
                d = esc(p.description.as_deref().unwrap_or("")),
            );
        }
        out.push_str("</tbody></table></div>\n");
    }
    out.push_str("</section>\n");
    out
}

/// A cloudlet's tags as the list and its page show them.
fn tags_html(tags: &[String]) -> String {
    let mut s = String::from("<p class=\"tags\">");
    for t in tags {
        let _ = write!(s, "<span class=\"tag\">{}</span> ", esc(t));
    }
    s.push_str("</p>");
    s
}

fn cloudlet_page(p: &Published, rel: &Path) -> String {
    let e = &p.entry;
    let root = root_of(rel);
    let mut body = format!("<h1>{}</h1>\n", esc(&e.name));
    if let Some(summary) = &e.summary {
        let _ = writeln!(body, "<p class=\"lead\">{}</p>", esc(summary));
    }
    if !e.tags.is_empty() {
        body.push_str(&tags_html(&e.tags));
        body.push('\n');
    }
    body.push_str("<h2>Install</h2>\n");
    body.push_str(&copyable("install-cmd", &install_command(&e.name, None)));
    body.push_str("<dl class=\"facts\">\n");
    let mut fact = |label: &str, value: String| {
        let _ = writeln!(body, "<dt>{label}</dt><dd>{value}</dd>");
    };
    if let Some(v) = &e.version {
        fact("Version", esc(v));
    }
    if let Some(a) = &e.author {
        fact("Author", esc(a));
    }
    if let Some(l) = &e.license {
        fact("License", esc(l));
    }
    if let Some(f) = &e.format {
        fact(
            "Layout",
            if f == "v1" {
                "Nepho 1.x (blueprints)".into()
            } else {
                esc(f)
            },
        );
    }
    if let Some(page_url) = e.project_page.as_deref().and_then(safe_href) {
        fact(
            "Project page",
            format!(
                "<a href=\"{0}\" rel=\"nofollow noopener\">{0}</a>",
                esc(page_url)
            ),
        );
    }
    fact("Repository", format!("<code>{}</code>", esc(&e.url)));
    body.push_str("</dl>\n");
    if let Some(d) = &e.description {
        let _ = writeln!(body, "<p>{}</p>", esc(d));
    }

    body.push_str("<h2>Scenarios</h2>\n");
    if e.scenarios.is_empty() {
        body.push_str(
            "<p class=\"muted\">The registry lists no scenarios for this cloudlet.</p>\n",
        );
    }
    for s in &e.scenarios {
        body.push_str(&scenario_section(s));
    }

    if !e.versions.is_empty() {
        body.push_str(
            "<h2>Versions</h2>\n<div class=\"scroll\"><table class=\"versions\">\n<thead><tr><th>Version</th><th>Commit</th><th>Install</th></tr></thead>\n<tbody>\n",
        );
        for (n, v) in e.versions.iter().enumerate() {
            let reference = v.tag.as_deref().unwrap_or(&v.commit);
            let _ = writeln!(
                body,
                "<tr><td>{ver}{latest}</td><td><code title=\"commit {c}, tree {t}\">{short}</code></td><td><code>{cmd}</code></td></tr>",
                ver = esc(&v.version),
                latest = if n == 0 {
                    " <span class=\"badge\">latest</span>"
                } else {
                    ""
                },
                c = esc(&v.commit),
                t = esc(&v.tree),
                short = esc(&v.commit[..12.min(v.commit.len())]),
                cmd = esc(&install_command(&e.name, Some(reference))),
            );
        }
        body.push_str("</tbody></table></div>\n");
    }

    if let Some(readme) = &p.readme {
        let _ = write!(
            body,
            "<h2>README</h2>\n<article class=\"readme\">{}</article>\n",
            markdown(readme)
        );
    }
    page(&root, &format!("{} — nepho registry", e.name), &body, false)
}

fn write_file(out: &Path, rel: &Path, text: &str) -> Result<()> {
    let path = out.join(rel);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).at(dir)?;
    }
    std::fs::write(&path, text).at(&path)
}

/// Writes the site into `out` (next to `index.json`); returns the number of HTML pages.
pub fn write(out: &Path, published: &[Published]) -> Result<usize> {
    write_file(out, Path::new("style.css"), STYLE)?;
    write_file(out, Path::new("site.js"), SCRIPT)?;
    write_file(out, Path::new("search-data.js"), &search_data(published)?)?;
    let chunks: Vec<&[Published]> = published.chunks(PAGE_SIZE).collect();
    let browse_pages = if chunks.len() > 1 { chunks.len() } else { 0 };
    write_file(out, Path::new("index.html"), &home(published, browse_pages))?;
    let mut pages = 1;
    for (n, chunk) in chunks.iter().enumerate().filter(|_| browse_pages > 0) {
        let rel = format!("browse/{}.html", n + 1);
        write_file(
            out,
            Path::new(&rel),
            &browse_page(chunk, n + 1, browse_pages),
        )?;
        pages += 1;
    }
    for p in published {
        let rel = page_path(&p.entry.name);
        write_file(out, &rel, &cloudlet_page(p, &rel))?;
        pages += 1;
    }
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_html_is_escaped_and_links_cannot_run_script() {
        let html = markdown(
            "# Title\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) [y](https://ok.example/) ![img](http://t.example/a.png)\n",
        );
        assert!(html.contains("<h1>Title</h1>"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(html.contains("href=\"https://ok.example/\""), "{html}");
        assert!(!html.contains("<img"), "{html}");
    }

    #[test]
    fn escaping_covers_attributes() {
        assert_eq!(
            esc("<a href=\"x\">'&"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;"
        );
        assert_eq!(safe_href("JavaScript:alert(1)"), None);
        assert_eq!(safe_href("docs/a.md"), Some("docs/a.md"));
        assert_eq!(safe_href("./a:b"), Some("./a:b"));
    }
}
