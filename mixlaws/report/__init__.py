"""The one-page study report: a self-contained HTML file with inline SVG figures.

Contract: `study.write(store, study, path)` reads the results store (and the study's plan from the
registry when the study is registered), fits what the finished runs allow, and writes one HTML file
that needs no network: figures are inline SVG, styles inline, no script. A partial sweep gives a
partial report; each section says what it lacks instead of failing the page.
"""
