// Advice that a fresh buffer be backed by huge pages, where the OS allows it.
#pragma once

#include <cstdint>

namespace sap_kernels {

// Asks the kernel to back the whole 2 MiB pages inside [data, data + bytes) with transparent
// huge pages (Linux, madvise mode), before they are first written: a fresh 100 MB mask then
// takes about 50 page faults instead of about 25,000. Advice only: nothing happens on other
// systems, for short buffers, or when the kernel declines.
void advise_huge_pages(void* data, int64_t bytes);

}  // namespace sap_kernels
