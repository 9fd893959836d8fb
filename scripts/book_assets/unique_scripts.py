"""A Sphinx extension for the staged book: every script once per page. (sphinx-thebe adds its inline
configuration, `const THEBE_JS_URL = ...`, once for every time jupyter-book reads the sources; a
second `const` of one name is a JavaScript error on every page.)"""


def unique_scripts(app, pagename, templatename, context, doctree):
    """Keep the first of scripts that are the same file with the same attributes (inline scripts: the
    same text), whatever priority each was added with."""
    kept, seen = [], set()
    for js in context.get("script_files", []):
        key = (js.filename or None, tuple(sorted(js.attributes.items())))   # inline: None or ""
        if key not in seen:
            seen.add(key)
            kept.append(js)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", unique_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
