"""SymptomGen web app: the Gradio Blocks ``demo`` (Hugging Face Spaces serves it).

Importing this file builds the page only: no model is loaded, no data is read,
no server starts.  ``python app.py`` launches it; see ``--help``.
"""

from symptomgen.ui import build_demo, main

demo = build_demo()

if __name__ == "__main__":
    main(demo)
