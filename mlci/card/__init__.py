"""The model card: Markdown for people, a CycloneDX 1.6 ``modelCard`` for machines."""
