using System.Diagnostics;

namespace ClipSharp.Benchmarks;

/// <summary>Timings of one workload plus what the machine did meanwhile.</summary>
/// <param name="Seconds">Wall time of each timed call, in order.</param>
/// <param name="OwnCpus">CPUs kept busy by this process during the timed calls (≈ thread count when compute-bound).</param>
/// <param name="OtherCpus">CPUs used by every other process during the timed calls (should be ≈ 0), or null.</param>
/// <param name="LoadAverage1">1-minute load average when the timed calls ended, or null.</param>
internal sealed record Timings(double[] Seconds, double OwnCpus, double? OtherCpus, double? LoadAverage1)
{
    /// <summary>Above this many CPUs of other work during a row, the row is flagged noisy.</summary>
    public const double NoisyOtherCpus = 0.1;

    /// <summary>True when other processes used noticeable CPU during the timed runs.</summary>
    public bool Noisy => OtherCpus is > NoisyOtherCpus;

    /// <summary>Median of <paramref name="values"/> (mean of the middle two for an even count).</summary>
    public static double Median(IReadOnlyList<double> values)
    {
        var s = values.Order().ToArray();
        return s.Length == 0 ? double.NaN : s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }
}

/// <summary>Runs a call a number of times after warm-up, as torch_anchor.py's timeit does.</summary>
internal static class BenchmarkTimer
{
    /// <summary>Calls <paramref name="call"/> <paramref name="warmup"/> times untimed, then <paramref name="runs"/> times timed.</summary>
    /// <param name="call">The work of one run.</param>
    /// <param name="runs">Timed runs (≥ 1).</param>
    /// <param name="warmup">Untimed runs first.</param>
    /// <returns>Per-run seconds and the CPU accounting of the timed part.</returns>
    public static Timings Measure(Action call, int runs, int warmup)
    {
        ArgumentNullException.ThrowIfNull(call);
        ArgumentOutOfRangeException.ThrowIfLessThan(runs, 1);
        for (int i = 0; i < warmup; i++) call();
        var seconds = new double[runs];
        double? busy0 = MachineLoad.SystemBusySeconds();
        double own0 = MachineLoad.OwnCpuSeconds();
        long wall0 = Stopwatch.GetTimestamp();
        for (int i = 0; i < runs; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            call();
            seconds[i] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        }
        double wall = Stopwatch.GetElapsedTime(wall0).TotalSeconds;
        double own = MachineLoad.OwnCpuSeconds() - own0;
        double? busy1 = MachineLoad.SystemBusySeconds();
        double? other = busy0 is null || busy1 is null ? null : Math.Max(0, busy1.Value - busy0.Value - own) / wall;
        return new Timings(seconds, own / wall, other, MachineLoad.LoadAverage()?[0]);
    }
}
