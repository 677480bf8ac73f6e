#include "base/thread.h"

#include <pthread.h>

#include <string>

namespace doppel {

void NameThread(std::thread& thread, std::string_view name) {
  const std::string truncated(name.substr(0, 15));
  pthread_setname_np(thread.native_handle(), truncated.c_str());
}

}  // namespace doppel
