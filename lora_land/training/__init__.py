"""Offline LoRA training on a task's exact prompt template (imports torch; not used by the app)."""
