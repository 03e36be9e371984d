"""Layer `reporting`: HTML reports, monitoring pages and model cards from autoescaped Jinja2 templates."""
