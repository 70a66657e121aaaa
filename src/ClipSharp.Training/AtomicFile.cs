namespace ClipSharp.Training;

/// <summary>
/// Small files that a killed process must never leave half-written: the text goes to a temporary file in the same
/// folder, which is then renamed over the target (rename is atomic within a file system).
/// </summary>
internal static class AtomicFile
{
    /// <summary>Suffix of the temporary files; <see cref="RemoveStale"/> deletes leftovers of killed writers.</summary>
    public const string TempSuffix = ".tmp";

    /// <summary>Writes <paramref name="text"/> to <paramref name="path"/> so that readers see the old or the new content, never a mix.</summary>
    public static void WriteAllText(string path, string text)
    {
        string full = Path.GetFullPath(path);
        string tmp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}{TempSuffix}");
        try
        {
            File.WriteAllText(tmp, text);
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    /// <summary>
    /// Deletes the temporary files a killed writer left in <paramref name="directory"/> (hidden <c>.*.tmp</c> files from
    /// this class and <see cref="Checkpoints.SafeTensors.Save"/>, and with <paramref name="stagedCheckpoints"/> the
    /// <c>*.partial</c> files of <see cref="CheckpointStore"/>); returns how many. Only call it when no other process
    /// writes into the folder.
    /// </summary>
    public static int RemoveStale(string directory, bool stagedCheckpoints = false)
    {
        if (!Directory.Exists(directory)) return 0;
        int removed = 0;
        foreach (var f in Directory.EnumerateFiles(directory))
        {
            string name = Path.GetFileName(f);
            bool stale = (name.StartsWith('.') && name.EndsWith(TempSuffix, StringComparison.Ordinal)) || (stagedCheckpoints && name.EndsWith(".partial", StringComparison.Ordinal));
            if (!stale) continue;
            try { File.Delete(f); removed++; } catch (IOException) { }
        }
        return removed;
    }
}
