"""SymptomGen web app: the Gradio Blocks ``demo`` (Hugging Face Spaces serves it).

Importing this file builds the page only: no model is loaded, no data is read,
no server starts.  ``python app.py`` launches it; see ``--help``.
"""

import multiprocessing

# Training runs in a child process started with "spawn", which imports this file again as its main module:
# that process trains and needs no page (building one would cost it seconds and memory).
if not multiprocessing.current_process().name.startswith("symptomgen-training"):
    from symptomgen.ui import build_page, main

    demo, page = build_page()

    if __name__ == "__main__":
        main(demo, store=page.store)
