"""A model locator that offers only the final global model to the final evaluation.

NVFlare's ``PTFileModelLocator`` lists every model the persistor saved: the final global
model and the "best" one (picked on the same clients' metrics). afr scores only the final
model, so evaluating the "best" one too costs a second round of validation tasks for nothing.
"""

from __future__ import annotations

import os

from nvflare.apis.fl_context import FLContext
from nvflare.app_opt.pt.file_model_locator import PTFileModelLocator

# The component id NVFlare's PTModel gives the persistor it creates for an nn.Module.
DEFAULT_PERSISTOR_ID = "persistor"


class FinalModelLocator(PTFileModelLocator):
    def __init__(self, pt_persistor_id: str = DEFAULT_PERSISTOR_ID):
        super().__init__(pt_persistor_id=pt_persistor_id)

    def get_model_names(self, fl_ctx: FLContext) -> list[str]:
        final = os.path.basename(self.model_persistor.global_model_file_name)
        return [name for name in super().get_model_names(fl_ctx) if name == final]
