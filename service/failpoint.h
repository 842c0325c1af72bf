// Named failpoints at durability boundaries, compiled only into test builds (DISPATCH_FAILPOINTS).
//
// DISPATCH_FAILPOINTS="after_delivery_commit:3,before_reply_commit:1" makes the 3rd hit of
// after_delivery_commit (and the 1st of before_reply_commit) kill the process at once with SIGKILL,
// exactly like `kill -9`: no destructor, no flush, no clean disconnect.
#pragma once

#include <string_view>

namespace dispatch::service {

#ifdef DISPATCH_FAILPOINTS
void failpoint_hit(std::string_view name);
#define DISPATCH_FAILPOINT(name) ::dispatch::service::failpoint_hit(name)
#else
#define DISPATCH_FAILPOINT(name) ((void)0)
#endif

}  // namespace dispatch::service
