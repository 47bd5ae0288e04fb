"""The Gradio user interface: one module per tab, composed by `lora_land.ui.app`.

Tabs take their collaborators from `services`; handlers are plain functions.
"""
