using System.Diagnostics;
using System.Globalization;

namespace ClipSharp.Benchmarks;

/// <summary>
/// What the machine and this process are doing: load average, system-wide busy CPU time (from /proc/stat),
/// this process's CPU time and its peak resident set. Used to flag timings taken while other work ran.
/// All readers return null (or 0) where /proc is not available.
/// </summary>
internal static class MachineLoad
{
    /// <summary>System-wide busy CPU-seconds summed over all CPUs since boot, or null.</summary>
    public static double? SystemBusySeconds()
    {
        try
        {
            using var reader = new StreamReader("/proc/stat");
            var parts = reader.ReadLine()!.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var v = parts.Skip(1).Take(8).Select(s => long.Parse(s, CultureInfo.InvariantCulture)).ToArray();
            long idle = v[3] + (v.Length > 4 ? v[4] : 0);
            return (v.Sum() - idle) / 100.0; // USER_HZ is 100 on Linux
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or NullReferenceException)
        {
            return null;
        }
    }

    /// <summary>The 1-, 5- and 15-minute load averages, or null.</summary>
    public static double[]? LoadAverage()
    {
        try
        {
            var parts = File.ReadAllText("/proc/loadavg").Split(' ');
            return parts.Take(3).Select(s => double.Parse(s, CultureInfo.InvariantCulture)).ToArray();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return null;
        }
    }

    /// <summary>CPU-seconds (user + system, all threads including native ones) used by this process so far.</summary>
    public static double OwnCpuSeconds()
    {
        using var p = Process.GetCurrentProcess();
        return p.TotalProcessorTime.TotalSeconds;
    }

    /// <summary>Peak resident set size of this process in bytes (VmHWM), or 0.</summary>
    public static long PeakRssBytes() => StatusField("VmHWM:");

    /// <summary>Current resident set size of this process in bytes (VmRSS), or 0.</summary>
    public static long CurrentRssBytes() => StatusField("VmRSS:");

    private static long StatusField(string field)
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith(field, StringComparison.Ordinal))
                    return long.Parse(line[field.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { }
        return 0;
    }

    /// <summary>The CPU model name from /proc/cpuinfo, or "unknown".</summary>
    public static string CpuModel()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/cpuinfo"))
                if (line.StartsWith("model name", StringComparison.Ordinal))
                    return line[(line.IndexOf(':') + 1)..].Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        return "unknown";
    }
}
