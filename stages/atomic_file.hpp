// Output files that appear under their final name only when complete and on disk.
//
// Every output is written as "<final>.partial" in its final directory (a rename is atomic
// only within one file system), flushed and fsync'ed, renamed over the final name, and then
// the directory is fsync'ed so the rename itself survives a crash or power loss. A reader, a
// killed run or a full disk therefore never leaves a truncated file under a final name.
//
// Thread safety: the functions are reentrant; concurrent calls must use different paths.
#pragma once

#include <string>
#include <string_view>

namespace flowinfer {

// "<final>.partial": the temporary name of every output while it is written.
std::string partial_path(const std::string& final_path);

// When a file reaches the disk. `now`: synced before the rename, the rename synced too.
// `later`: renamed without a sync; sync_filesystem() makes every such file durable at
// once. For the many small files of an image run (a mask and a resume record per image), where
// two fsyncs per file would cost more than the image's inference, and a file lost by a crash
// shows up as missing or of the wrong size to the resume check.
enum class Sync { now, later };

// Writes `bytes` to partial_path(path), syncs it (Sync::now) and renames it to `path`
// (replacing an older file). Throws OutputError naming `path`; on failure the temporary file
// is removed and an older file under `path` is left as it was.
void write_file_atomically(const std::string& path, std::string_view bytes, Sync sync = Sync::now);

// syncfs(2) on the file system holding `dir`: every Sync::later file written so far is on
// disk when it returns. Throws OutputError naming `dir`.
void sync_filesystem(const std::string& dir);

// fsync(fd); throws OutputError naming `path` (the final name) when the data could not be
// stored (EIO, ENOSPC, EDQUOT on file systems that allocate late).
void sync_file(int fd, const std::string& path);

// Renames `partial` to `final_path` and fsyncs the directory. Throws OutputError naming
// `final_path`; `partial` is removed when the rename fails.
void commit_file(const std::string& partial, const std::string& final_path);

// For a file a library wrote and closed (libtiff, HDF5): opens `partial` again, fsyncs it
// (fsync reaches the file's data through any descriptor) and commits it as commit_file does.
// Throws OutputError naming `final_path`; `partial` is removed on any failure.
void sync_and_commit(const std::string& partial, const std::string& final_path);

}  // namespace flowinfer
