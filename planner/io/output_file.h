// Writing a command's output file (`planner plan/render -o`, `executor run --logits-out`) without
// ever replacing something that is not a regular file the user named.
//   - a new path, or an existing regular file that is not a symlink: written to a temporary file in
//     the same folder and renamed over the path, so a reader never sees half a file and a failure
//     leaves the old file as it was (the old file's permission bits are kept);
//   - a symlink, FIFO, character or block device, terminal (`-o /dev/stdout`, `-o /dev/null`, a
//     link to a file elsewhere): opened and written through, as `cat > PATH` would, never replaced;
//   - a dangling symlink, a directory, or one of `inputs` (the spec the output comes from): refused.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace shardplan {

// Writes `bytes` to `path` as above. Returns "" on success, else the reason (for a message of the
// form "cannot write 'PATH': REASON"). `inputs` are files that must not be overwritten (compared
// by device and inode, so another spelling or a link to them is caught too).
std::string write_output_file(const std::string& path, std::string_view bytes,
                              const std::vector<std::string>& inputs = {});

}  // namespace shardplan
