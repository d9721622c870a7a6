"""NVTabular preprocessing: the workflow that encodes ids and features, fitted on train only.

NVTabular is imported inside the functions, so importing this package stays cheap.
"""

from workflow_builder.workflow import BuiltWorkflow, build_all_data, build_workflow

__all__ = ["BuiltWorkflow", "build_all_data", "build_workflow"]
