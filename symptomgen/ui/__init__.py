"""The Gradio page: one module per tab or panel, over the core ``symptomgen`` package.

``page`` lays out the Blocks app and launches it; ``data_tab``, ``train_tab``,
``generate_tab`` (with ``explain_panel``) and ``evaluate_tab`` (with ``share_panel``)
build their widgets and call core functions; ``widgets`` holds the shared pieces.
Nothing in the core imports this package.
"""

from .page import PAGE_CSS, build_demo, build_page, main

__all__ = ["PAGE_CSS", "build_demo", "build_page", "main"]
