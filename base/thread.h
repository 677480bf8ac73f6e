// Thread names: what `top -H`, `perf` and `ps -L` show for each of doppel's threads.
#pragma once

#include <string_view>
#include <thread>

namespace doppel {

// Names `thread` (Linux keeps the first 15 bytes); done by the thread that started it, so the
// name is in place when that thread goes on. REQUIRES: thread.joinable().
void NameThread(std::thread& thread, std::string_view name);

}  // namespace doppel
