using System.Globalization;
using System.Runtime.InteropServices;

namespace ClipSharp.Training;

/// <summary>
/// Named moments of a training run at which a crash test can freeze the process ("fail points"). Setting
/// <c>CLIPSHARP_FAILPOINT=NAME</c> or <c>NAME@STEP</c> arms one: when the run reaches it, the process writes
/// <c>failpoint NAME@STEP reached</c> to stderr and stops itself with SIGSTOP, so nothing runs past that moment until
/// the test kills it (or continues it with SIGCONT). A kill triggered this way lands at exactly the planned moment
/// whatever the speed of the machine, which a kill timed from outside cannot promise.
/// Unset (the normal case) every check is one null test.
/// </summary>
internal static partial class FailPoints
{
    /// <summary>The environment variable that arms a fail point.</summary>
    public const string Variable = "CLIPSHARP_FAILPOINT";

    /// <summary>Every fail point name, in the order a run reaches them.</summary>
    public static readonly IReadOnlyList<string> Names =
    [
        Start, Resumed, Ready, StepComputed, StepLogged, CheckpointStaged, CheckpointCommitted,
    ];

    /// <summary>Run directory prepared (stale temporary files removed), nothing loaded yet.</summary>
    public const string Start = "start";
    /// <summary>The resume checkpoint has been read, the model not built yet (only reached when resuming).</summary>
    public const string Resumed = "resumed";
    /// <summary>Model, optimiser and data loader ready, before the first step of this process.</summary>
    public const string Ready = "ready";
    /// <summary>Step STEP's update is applied in memory; nothing about it is reported or written yet.</summary>
    public const string StepComputed = "step-computed";
    /// <summary>Step STEP's metrics are written to metrics.jsonl (and TensorBoard).</summary>
    public const string StepLogged = "step-logged";
    /// <summary>The checkpoint of step STEP is fully written under its temporary name, not yet renamed into place.</summary>
    public const string CheckpointStaged = "checkpoint-staged";
    /// <summary>The checkpoint of step STEP is renamed into place; older checkpoints are not pruned yet.</summary>
    public const string CheckpointCommitted = "checkpoint-committed";

    private static readonly (string Name, long? Step)? Armed = ParseOrWarn(Environment.GetEnvironmentVariable(Variable));

    private static (string Name, long? Step)? ParseOrWarn(string? value)
    {
        try { return Parse(value); }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"warning: {e.Message}; no fail point armed");
            return null;
        }
    }

    /// <summary>Parses <c>NAME</c> or <c>NAME@STEP</c>; null when unset or empty.</summary>
    internal static (string Name, long? Step)? Parse(string? value)
    {
        if (string.IsNullOrWhiteSpace(value)) return null;
        int at = value.IndexOf('@', StringComparison.Ordinal);
        string name = at < 0 ? value.Trim() : value[..at].Trim();
        if (!Names.Contains(name))
            throw new ArgumentException($"{Variable}: unknown fail point '{name}' (known: {string.Join(", ", Names)})");
        if (at < 0) return (name, null);
        if (!long.TryParse(value[(at + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out long step))
            throw new ArgumentException($"{Variable}: '{value}' is not NAME@STEP with a whole step number");
        return (name, step);
    }

    /// <summary>Stops the process here if this fail point (at this step, when the armed one names a step) is armed.</summary>
    public static void Reach(string name, long step = -1)
    {
        if (Armed is not { } armed || armed.Name != name || (armed.Step is long s && s != step)) return;
        Console.Error.WriteLine(step >= 0 ? $"failpoint {name}@{step} reached" : $"failpoint {name} reached");
        Console.Error.Flush();
        if (OperatingSystem.IsLinux()) _ = Kill(Environment.ProcessId, 19);                          // SIGSTOP
        else if (OperatingSystem.IsMacOS() || OperatingSystem.IsFreeBSD()) _ = Kill(Environment.ProcessId, 17);
        else Thread.Sleep(Timeout.Infinite); // no SIGSTOP: at least this thread goes no further
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
