"""One reader per source schema; each turns raw tables into the common timeline frames."""
