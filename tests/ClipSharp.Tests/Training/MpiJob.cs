using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace ClipSharp.Tests.Training;

/// <summary>
/// An Open MPI job started by a test: <c>mpirun</c> over TCP on the loopback interface only (<c>--mca btl tcp,self</c>:
/// the network path, not shared memory), with every output line tagged by its rank. Lines are collected as they
/// arrive so a test can act on an observed line (kill a rank after it reported a step). Installed by ./test.sh
/// (Debian openmpi-bin, libopenmpi3).
/// </summary>
internal sealed partial class MpiJob : IDisposable
{
    public const string Mpirun = "/usr/bin/mpirun";

    /// <summary>One application context of the job: how many ranks run which command line.</summary>
    public sealed record App(int Ranks, IReadOnlyList<string> Command);

    readonly Process process;
    readonly List<(int Rank, string Text)> lines = [];
    int streamsOpen = 2;

    MpiJob(Process process) => this.process = process;

    /// <summary>The dotnet host running the tests.</summary>
    public static string Dotnet => Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";

    /// <summary><c>clip ARGS</c> as built beside the tests.</summary>
    public static string[] Clip(params string[] args) => [Dotnet, "exec", Path.Combine(AppContext.BaseDirectory, "clip.dll"), .. args];

    /// <summary>This test assembly as the MPI program (<see cref="MpiRanks"/>).</summary>
    public static string[] Ranks(params string[] args) => [Dotnet, "exec", Path.Combine(AppContext.BaseDirectory, "ClipSharp.Tests.dll"), .. args];

    /// <summary>Starts <paramref name="ranks"/> ranks of one command.</summary>
    public static MpiJob Start(int ranks, string[] command, IReadOnlyDictionary<string, string>? environment = null) =>
        Start([new App(ranks, command)], environment);

    /// <summary>A file of the repository (scripts).</summary>
    public static string RepoPath(params string[] parts)
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (!File.Exists(Path.Combine(dir.FullName, "ClipSharp.slnx"))) dir = dir.Parent ?? throw new DirectoryNotFoundException("no ClipSharp.slnx above " + AppContext.BaseDirectory);
        return Path.Combine([dir.FullName, .. parts]);
    }

    /// <summary>Starts a job of one or more application contexts (MPMD: <c>mpirun -np 1 A : -np 1 B</c>).</summary>
    /// <param name="apps">The application contexts.</param>
    /// <param name="environment">Variables for mpirun and the ranks.</param>
    /// <param name="mpirunOptions">More mpirun options.</param>
    /// <param name="interfaces">The only interfaces or subnet MPI may use (default: loopback).</param>
    /// <param name="prefix">A command mpirun runs under (e.g. <c>ip netns exec NS</c>).</param>
    public static MpiJob Start(IReadOnlyList<App> apps, IReadOnlyDictionary<string, string>? environment = null, IReadOnlyList<string>? mpirunOptions = null,
        string interfaces = "lo", IReadOnlyList<string>? prefix = null)
    {
        if (!File.Exists(Mpirun)) throw new InvalidOperationException($"{Mpirun} is missing: run ./test.sh, which installs Debian's openmpi-bin and libopenmpi3");
        var command = (prefix ?? []).Append(Mpirun).ToList();
        var psi = new ProcessStartInfo(command[0]) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in command.Skip(1)) psi.ArgumentList.Add(a);
        foreach (var a in new[] { "--allow-run-as-root", "--oversubscribe", "--tag-output", "--mca", "btl", "tcp,self",
                     "--mca", "btl_tcp_if_include", interfaces, "--mca", "oob_tcp_if_include", interfaces })
            psi.ArgumentList.Add(a);
        foreach (var a in mpirunOptions ?? []) psi.ArgumentList.Add(a);
        for (int i = 0; i < apps.Count; i++)
        {
            if (i > 0) psi.ArgumentList.Add(":");
            psi.ArgumentList.Add("-np");
            psi.ArgumentList.Add(apps[i].Ranks.ToString(CultureInfo.InvariantCulture));
            foreach (var a in apps[i].Command) psi.ArgumentList.Add(a);
        }
        // One thread per rank on this 2-core machine; no terminal control codes in the captured lines.
        psi.Environment["OMP_NUM_THREADS"] = "1";
        psi.Environment["TERM"] = "dumb";
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        var job = new MpiJob(new Process { StartInfo = psi });
        job.process.Start();
        // Dedicated threads (not the thread pool, which parallel tests can starve) read both streams.
        foreach (var reader in new[] { job.process.StandardError, job.process.StandardOutput })
            new Thread(() => job.Read(reader)) { IsBackground = true, Priority = ThreadPriority.AboveNormal }.Start();
        return job;
    }

    [GeneratedRegex(@"^\[\d+,(\d+)\]<std(?:out|err)>:(.*)$")]
    private static partial Regex Tagged();

    void Read(StreamReader reader)
    {
        while (reader.ReadLine() is { } line)
        {
            var m = Tagged().Match(line);
            var entry = m.Success ? (int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), m.Groups[2].Value) : (-1, line);
            lock (lines)
            {
                lines.Add(entry);
                Monitor.PulseAll(lines);
            }
        }
        lock (lines)
        {
            streamsOpen--;
            Monitor.PulseAll(lines);
        }
    }

    /// <summary>Every line so far: (rank, text); rank −1 for mpirun's own output.</summary>
    public IReadOnlyList<(int Rank, string Text)> Lines
    {
        get { lock (lines) return lines.ToList(); }
    }

    /// <summary>The lines of one rank.</summary>
    public IReadOnlyList<string> Of(int rank) => Lines.Where(l => l.Rank == rank).Select(l => l.Text).ToList();

    /// <summary>Everything the job printed, for assertion messages.</summary>
    public string Transcript => string.Join("\n", Lines.Select(l => l.Rank < 0 ? l.Text : $"[{l.Rank}] {l.Text}"));

    /// <summary>Waits for the first line that satisfies <paramref name="match"/>; null when the job's output ended without one.</summary>
    public (int Rank, string Text)? WaitForLine(Func<int, string, bool> match, TimeSpan? guard = null)
    {
        var deadline = DateTime.UtcNow + (guard ?? TimeSpan.FromMinutes(3));
        lock (lines)
        {
            int seen = 0;
            while (true)
            {
                for (; seen < lines.Count; seen++)
                    if (match(lines[seen].Rank, lines[seen].Text)) return lines[seen];
                if (streamsOpen == 0) return null;
                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero) throw new TimeoutException($"no matching line within the guard time; so far:\n{string.Join("\n", lines)}");
                Monitor.Wait(lines, left);
            }
        }
    }

    /// <summary>Waits for mpirun to exit (and its output to end); returns its exit code.</summary>
    public int WaitForExit(TimeSpan? guard = null)
    {
        if (!process.WaitForExit(guard ?? TimeSpan.FromMinutes(3)))
            throw new TimeoutException($"mpirun did not exit within the guard time; output so far:\n{Transcript}");
        process.WaitForExit();
        lock (lines)
            while (streamsOpen > 0) Monitor.Wait(lines, TimeSpan.FromSeconds(10));
        return process.ExitCode;
    }

    [GeneratedRegex(@"data-parallel: rank (\d+) of \d+ on .* \(pid (\d+)\)")]
    private static partial Regex RankLine();

    /// <summary>The process id a rank reported in its start-up line (waits for the line).</summary>
    public int Pid(int rank)
    {
        var line = WaitForLine((r, text) => r == rank && RankLine().Match(text) is { Success: true } m && m.Groups[1].Value == rank.ToString(CultureInfo.InvariantCulture))
            ?? throw new InvalidOperationException($"rank {rank} never reported its pid:\n{Transcript}");
        return int.Parse(RankLine().Match(line.Text).Groups[2].Value, CultureInfo.InvariantCulture);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        try { if (!process.HasExited) process.Kill(entireProcessTree: true); }
        catch (InvalidOperationException) { }
        process.Dispose();
    }
}
