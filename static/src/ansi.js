// Program output to HTML for the console: ansi_up (SGR colours, OSC 8 hyperlinks), HTML-escaped.
//
// ansi_up itself drops a hyperlink whose scheme it refuses *together with its text* (a program
// printing a `javascript:` link showed an empty line), draws a kept link's text without the
// current colours, and opens it in place of the editor. Here a refused link keeps its text as
// plain (coloured) text, and a kept one (http/https only) opens in a new tab without an opener.
import { AnsiUp } from "ansi_up";

const LINK_SCHEMES = new Set(["http:", "https:"]);

/** The normalised URL when an OSC 8 link to `url` may be followed, else null. */
export function allowedLink(url) {
  let parsed;
  try {
    parsed = new URL(url);
  } catch {
    return null; // relative or malformed: there is no page to resolve it against
  }
  return LINK_SCHEMES.has(parsed.protocol) ? parsed.href : null;
}

/** One parser per stream: it keeps the colour state and any half-received escape sequence. */
export function newParser() {
  const p = new AnsiUp();
  p.use_classes = true; // the 16 basic colours come from CSS, so they suit both themes
  p.escape_html = true;
  p.process_hyperlink = (pkt) => {
    const text = p.transform_to_html(p.with_state(pkt)); // escaped, in the current colours
    const href = allowedLink(pkt.url);
    if (href === null) return text;
    return `<a href="${p.escape_txt_for_html(href)}" target="_blank" rel="noopener noreferrer">${text}</a>`;
  };
  return p;
}
