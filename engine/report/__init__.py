"""The PDF report: one page per case, one PDF for a selection.

    items = report_items([12, 14, "new.dcm"], log=log, grader=grader)   # gather (re-grades for the heat maps)
    write_pdf("report.pdf", items)                                       # draw, write atomically

item (ReportItem: what a page shows), collect (gather items from the case log and a grader),
pdf (the page layout), plot (the grade history), pen (reportlab with top-down coordinates).
"""

from engine.report.collect import ReportError, case_item, image_item, model_notices, report_items
from engine.report.item import ReportItem, answer_of
from engine.report.pdf import write_pdf

__all__ = ["ReportError", "ReportItem", "answer_of", "case_item", "image_item", "model_notices", "report_items",
           "write_pdf"]
