"""The HTML report: figures and tables from the analyses, data files beside the page."""
