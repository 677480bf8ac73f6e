// The recorder's name for the redactor, which lives in redact/ (a layer below interop/, so
// `doppel import` runs the same one): see redact/redactor.h.
#pragma once

#include "redact/redactor.h"

namespace doppel::recorder {

using redact::Redactor;

}  // namespace doppel::recorder
