"""What a reader sees: tables for reading (``tables``), figures (``figures``) and the
Markdown summary (``summary``), all pure functions of the result tables."""
