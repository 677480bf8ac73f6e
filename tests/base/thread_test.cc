#include "base/thread.h"

#include <gtest/gtest.h>
#include <pthread.h>

#include <future>
#include <thread>

namespace doppel {
namespace {

TEST(ThreadTest, NameIsInPlaceWhenNameThreadReturnsAndCutTo15Bytes) {
  std::promise<void> go;
  std::shared_future<void> started = go.get_future().share();
  auto idle = [started] { started.wait(); };
  std::thread a(idle), b(idle);
  NameThread(a, "doppel-x");
  NameThread(b, "doppel-a-very-long-thread-name");
  char name_a[32] = {}, name_b[32] = {};
  pthread_getname_np(a.native_handle(), name_a, sizeof name_a);
  pthread_getname_np(b.native_handle(), name_b, sizeof name_b);
  go.set_value();
  a.join();
  b.join();
  EXPECT_STREQ(name_a, "doppel-x");
  EXPECT_STREQ(name_b, "doppel-a-very-l");
}

}  // namespace
}  // namespace doppel
