using System.Globalization;
using System.Text.RegularExpressions;
using ClipSharp.Checkpoints;
using static TorchSharp.torch;

namespace ClipSharp.Training;

/// <summary>A training checkpoint read back from disk.</summary>
/// <param name="Path">The file.</param>
/// <param name="Step">Optimiser steps done.</param>
/// <param name="Tensors">"model.*", "optim.*" and other tensors (owned by the caller).</param>
/// <param name="Metadata">Step, data position, RNG state, config and metrics.</param>
public sealed record TrainingCheckpoint(string Path, long Step, StateDict Tensors, IReadOnlyDictionary<string, string> Metadata) : IDisposable
{
    /// <inheritdoc />
    public void Dispose() => Tensors.Dispose();
}

/// <summary>
/// Periodic training checkpoints in <c>RUN/checkpoints/step-NNNNNNNN.safetensors</c>: one safetensors file each,
/// holding the model, the optimiser moments and the sigmoid bias, with step, data position, RNG state and the
/// resolved config in its metadata. Files are written under a temporary name and renamed only when complete, so
/// a run killed at any moment leaves either the new checkpoint or none, never a partial one; only the newest
/// <see cref="KeepLast"/> are kept.
/// </summary>
public sealed partial class CheckpointStore(string runDirectory, int keepLast = 3)
{
    /// <summary>Folder holding the checkpoints.</summary>
    public string Directory { get; } = System.IO.Path.Combine(runDirectory, "checkpoints");

    /// <summary>How many periodic checkpoints are kept.</summary>
    public int KeepLast { get; } = keepLast;

    /// <summary>Test hook: called with the staged file after it is fully written and before it is renamed into place.</summary>
    public Action<string>? BeforeCommit { get; set; }

    [GeneratedRegex(@"^step-(\d{8,})\.safetensors$")]
    private static partial Regex StepFile();

    /// <summary>Path of the checkpoint for <paramref name="step"/>.</summary>
    public string PathFor(long step) => System.IO.Path.Combine(Directory, $"step-{step.ToString("D8", CultureInfo.InvariantCulture)}.safetensors");

    /// <summary>Writes a checkpoint atomically and prunes old ones; returns its path.</summary>
    public string Save(long step, StateDict tensors, IReadOnlyDictionary<string, string> metadata)
    {
        System.IO.Directory.CreateDirectory(Directory);
        string final = PathFor(step);
        string staged = final + ".partial";
        try
        {
            SafeTensors.Save(staged, tensors, metadata);
            BeforeCommit?.Invoke(staged);
            FailPoints.Reach(FailPoints.CheckpointStaged, step);
            File.Move(staged, final, overwrite: true);
            FailPoints.Reach(FailPoints.CheckpointCommitted, step);
        }
        finally
        {
            if (File.Exists(staged)) File.Delete(staged);
        }
        Prune();
        return final;
    }

    /// <summary>Completed checkpoints, oldest first.</summary>
    public IReadOnlyList<(long Step, string Path)> List()
    {
        if (!System.IO.Directory.Exists(Directory)) return [];
        return System.IO.Directory.EnumerateFiles(Directory)
            .Select(p => (Match: StepFile().Match(System.IO.Path.GetFileName(p)), Path: p))
            .Where(x => x.Match.Success)
            .Select(x => (long.Parse(x.Match.Groups[1].Value, CultureInfo.InvariantCulture), x.Path))
            .OrderBy(x => x.Item1).ToList();
    }

    /// <summary>The newest checkpoint whose header reads back, or null.</summary>
    public string? Latest()
    {
        foreach (var (_, path) in List().Reverse())
        {
            try { SafeTensors.ReadHeader(path); return path; }
            catch (Exception e) when (e is InvalidDataException or IOException) { }
        }
        return null;
    }

    /// <summary>Loads a checkpoint file.</summary>
    public static TrainingCheckpoint Load(string path)
    {
        var tensors = SafeTensors.Load(path, out var meta);
        long step = meta.TryGetValue("step", out var s) ? long.Parse(s, CultureInfo.InvariantCulture)
            : throw new InvalidDataException($"{path}: not a training checkpoint (no 'step' metadata)");
        return new TrainingCheckpoint(path, step, tensors, meta);
    }

    private void Prune()
    {
        var all = List();
        for (int i = 0; i < all.Count - KeepLast; i++)
        {
            try { File.Delete(all[i].Path); } catch (IOException) { }
        }
    }
}
