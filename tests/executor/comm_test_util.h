// Helpers for the communicator and launcher tests: ranks of comm_test_rank started as real
// processes (fork + exec, each with its own output files), and a function run in a forked child
// with its output captured.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "executor/comm/launcher.h"

namespace shardplan::testing {

using Clock = std::chrono::steady_clock;

inline std::string comm_test_rank_path() {
  return std::string(SHARDPLAN_BINARY_DIR) + "/tests/executor/comm_test_rank";
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A fresh scratch directory under /tmp.
// NOTE: POSIX calls, not std::filesystem: with pip's torch 2.11, std::filesystem::remove_all binds
// to a broken copy exported by libtorch.so and calls a null pointer.
inline std::string scratch_dir(const std::string& tag) {
  std::string pattern = "/tmp/shardplan_comm_" + tag + "_XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp " + pattern + " failed");
  return pattern;
}

// Removes a scratch directory and the files in it (no subdirectories are made).
inline void remove_scratch_dir(const std::string& dir) {
  if (DIR* listing = ::opendir(dir.c_str())) {
    while (const dirent* entry = ::readdir(listing)) {
      const std::string name = entry->d_name;
      if (name != "." && name != "..") ::unlink((dir + "/" + name).c_str());
    }
    ::closedir(listing);
  }
  ::rmdir(dir.c_str());
}

inline double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// fork + exec of `argv` with `env`, stdout and stderr to the given files.
inline pid_t spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env, const std::string& out,
                   const std::string& err) {
  std::vector<std::string> args = argv;
  std::vector<std::string> envs = env;
  std::vector<char*> c_args, c_env;
  for (std::string& a : args) c_args.push_back(a.data());
  c_args.push_back(nullptr);
  for (std::string& e : envs) c_env.push_back(e.data());
  c_env.push_back(nullptr);
  const int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int err_fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out_fd, STDOUT_FILENO);
    ::dup2(err_fd, STDERR_FILENO);
    ::execve(c_args[0], c_args.data(), c_env.data());
    ::_exit(127);
  }
  ::close(out_fd);
  ::close(err_fd);
  return pid;
}

// This process's environment with `changes` applied (an empty value removes the variable).
inline std::vector<std::string> environment_with(const std::map<std::string, std::string>& changes) {
  std::vector<std::string> env;
  for (char** e = ::environ; *e != nullptr; ++e) {
    const std::string text = *e;
    if (changes.count(text.substr(0, text.find('='))) == 0) env.push_back(text);
  }
  for (const auto& change : changes) {
    if (!change.second.empty()) env.push_back(change.first + "=" + change.second);
  }
  return env;
}

// world_size ranks of comm_test_rank, started directly (no launcher supervises them).
class RankProcesses {
 public:
  struct Rank {
    pid_t pid = -1;
    bool exited = false;
    int status = 0;
    Clock::time_point exited_at;
    std::string out, err;  // file paths
  };

  // Starts ranks 0 .. started - 1 of world_size (all when started < 0), at `port` (0: a free one).
  RankProcesses(int world_size, const std::vector<std::string>& args,
                const std::map<std::string, std::string>& extra_env = {}, int started = -1, int port = 0)
      : dir_(scratch_dir("ranks")) {
    if (port == 0) port = find_free_port();
    for (int r = 0; r < (started < 0 ? world_size : started); ++r) {
      std::map<std::string, std::string> env = {{"RANK", std::to_string(r)},
                                                {"WORLD_SIZE", std::to_string(world_size)},
                                                {"LOCAL_RANK", std::to_string(r)},
                                                {"MASTER_ADDR", "127.0.0.1"},
                                                {"MASTER_PORT", std::to_string(port)}};
      for (const auto& change : extra_env) env[change.first] = change.second;  // "" removes
      Rank rank;
      rank.out = dir_ + "/out" + std::to_string(r);
      rank.err = dir_ + "/err" + std::to_string(r);
      std::vector<std::string> argv{comm_test_rank_path()};
      argv.insert(argv.end(), args.begin(), args.end());
      rank.pid = spawn(argv, environment_with(env), rank.out, rank.err);
      ranks_.push_back(rank);
    }
  }
  ~RankProcesses() {
    for (Rank& rank : ranks_) {
      if (!rank.exited) {
        ::kill(rank.pid, SIGKILL);
        ::waitpid(rank.pid, nullptr, 0);
      }
    }
    remove_scratch_dir(dir_);
  }
  RankProcesses(const RankProcesses&) = delete;
  RankProcesses& operator=(const RankProcesses&) = delete;

  int size() const { return static_cast<int>(ranks_.size()); }
  const Rank& rank(int r) const { return ranks_[static_cast<size_t>(r)]; }
  std::string out(int r) const { return read_text(ranks_[static_cast<size_t>(r)].out); }
  std::string err(int r) const { return read_text(ranks_[static_cast<size_t>(r)].err); }
  void signal(int r, int sig) { ::kill(ranks_[static_cast<size_t>(r)].pid, sig); }

  // Reaps what exited; true when every rank in `which` (all when empty) has.
  bool poll(const std::vector<int>& which = {}) {
    bool all = true;
    for (int r = 0; r < size(); ++r) {
      Rank& rank = ranks_[static_cast<size_t>(r)];
      if (!rank.exited && ::waitpid(rank.pid, &rank.status, WNOHANG) == rank.pid) {
        rank.exited = true;
        rank.exited_at = Clock::now();
      }
      const bool wanted = which.empty() || std::find(which.begin(), which.end(), r) != which.end();
      if (wanted && !rank.exited) all = false;
    }
    return all;
  }
  bool wait(std::chrono::milliseconds limit, const std::vector<int>& which = {}) {
    const Clock::time_point deadline = Clock::now() + limit;
    while (!poll(which)) {
      if (Clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
  }
  // Waits until rank r's stdout or stderr contains `text` (false after `limit` or if it exited).
  bool wait_for_output(int r, const std::string& text, std::chrono::milliseconds limit) {
    const Clock::time_point deadline = Clock::now() + limit;
    while (Clock::now() < deadline) {
      if (out(r).find(text) != std::string::npos || err(r).find(text) != std::string::npos) return true;
      poll();
      if (rank(r).exited) return out(r).find(text) != std::string::npos || err(r).find(text) != std::string::npos;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }
  std::string describe() const {
    std::string text;
    for (int r = 0; r < size(); ++r) {
      const Rank& rank = ranks_[static_cast<size_t>(r)];
      text += "--- rank " + std::to_string(r) +
              (rank.exited ? " (exited, status " + std::to_string(rank.status) + ")" : " (running)") + "\nstdout:\n" +
              out(r) + "stderr:\n" + err(r);
    }
    return text;
  }

 private:
  std::string dir_;
  std::vector<Rank> ranks_;
};

// Runs `fn` in a forked child with stdout and stderr captured; the child's exit code is fn's.
struct ChildResult {
  int status = 0;  // waitpid status
  bool finished = false;
  double seconds = 0;
  std::string out, err;
};
inline ChildResult run_in_child(const std::function<int()>& fn, std::chrono::milliseconds limit,
                                const std::function<void(pid_t, const std::string& err_path)>& while_running = {}) {
  const std::string dir = scratch_dir("child");
  const std::string out = dir + "/out", err = dir + "/err";
  std::fflush(nullptr);
  const Clock::time_point start = Clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err_fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(out_fd, STDOUT_FILENO);
    ::dup2(err_fd, STDERR_FILENO);
    int code = 1;
    try {
      code = fn();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "exception: %s\n", e.what());
    }
    std::fflush(nullptr);
    ::_exit(code);
  }
  if (while_running) while_running(pid, err);
  ChildResult result;
  const Clock::time_point deadline = start + limit;
  while (Clock::now() < deadline) {
    if (::waitpid(pid, &result.status, WNOHANG) == pid) {
      result.finished = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!result.finished) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &result.status, 0);
  }
  result.seconds = seconds_between(start, Clock::now());
  result.out = read_text(out);
  result.err = read_text(err);
  remove_scratch_dir(dir);
  return result;
}

}  // namespace shardplan::testing
