using System.Globalization;

namespace ClipSharp.Text;

/// <summary>
/// Finds the BPE vocabulary a tokenizer needs, in this order:
/// <list type="number">
/// <item>an explicit path (a <c>.txt.gz</c> BPE file, a Hugging Face <c>vocab.json</c> with <c>merges.txt</c> beside it, or a folder holding either);</item>
/// <item>the vocabulary the checkpoint declares (<see cref="VocabularyRecord"/> in the metadata of checkpoints ClipSharp
/// writes): the built-in one if it is that, else the named files with the recorded SHA-256 in the checkpoint's folder or
/// the folder above it (a training run's <c>checkpoints/</c>); declared but not found is an error, never a fallback;</item>
/// <item>the checkpoint's folder: <c>bpe_simple_vocab_16e6.txt.gz</c>, or <c>vocab.json</c> + <c>merges.txt</c> (a Hugging Face model folder);</item>
/// <item>the environment variable <c>CLIPSHARP_BPE_VOCAB</c> (a file or folder);</item>
/// <item><c>~/.cache/clipsharp/</c>;</item>
/// <item>OpenAI's <c>bpe_simple_vocab_16e6.txt.gz</c>, built into ClipSharp (<see cref="ClipTokenizer.BuiltIn"/>).</item>
/// </list>
/// A model's own vocabulary thus comes before any default. Whether the vocabulary fits a model is checked by
/// <c>ClipModel.CheckVocabulary</c>; <c>ClipModel.LoadTokenizer</c> does both.
/// </summary>
public static class VocabularyLocator
{
    /// <summary>File name of the reference vocabulary.</summary>
    public const string BpeFileName = ClipTokenizer.BuiltInFileName;

    /// <summary>Environment variable naming a vocabulary file or folder.</summary>
    public const string EnvironmentVariable = "CLIPSHARP_BPE_VOCAB";

    /// <summary>Loads the tokenizer from the first vocabulary found (see the class remarks); the built-in one when nothing else is given.</summary>
    /// <param name="explicitPath">A .txt.gz BPE file, a vocab.json (merges.txt beside it), or a folder holding either.</param>
    /// <param name="checkpointPath">A checkpoint file or folder whose folder is searched.</param>
    /// <param name="declared">The vocabulary the checkpoint declares (its metadata), if any.</param>
    /// <exception cref="FileNotFoundException">The explicit path holds no vocabulary, or the declared one is not beside the checkpoint.</exception>
    /// <exception cref="InvalidDataException">A vocabulary file is malformed.</exception>
    public static ClipTokenizer Load(string? explicitPath = null, string? checkpointPath = null, VocabularyRecord? declared = null)
    {
        if (explicitPath is not null)
        {
            if (!File.Exists(explicitPath) && !Directory.Exists(explicitPath))
                throw new FileNotFoundException($"vocabulary not found: {explicitPath}");
            return Probe(explicitPath)
                ?? throw new FileNotFoundException($"no BPE vocabulary in {explicitPath} (expected {BpeFileName}, or vocab.json with merges.txt beside it)");
        }
        string? checkpointDir = checkpointPath is null ? null
            : Directory.Exists(checkpointPath) ? Path.GetFullPath(checkpointPath) : Path.GetDirectoryName(Path.GetFullPath(checkpointPath))!;
        if (declared is not null) return Declared(declared, checkpointPath!, checkpointDir);

        var candidates = new List<string>();
        if (checkpointDir is not null) candidates.Add(checkpointDir);
        var env = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrEmpty(env))
        {
            if (!File.Exists(env) && !Directory.Exists(env))
                throw new FileNotFoundException($"{EnvironmentVariable}={env}: no such file or folder");
            candidates.Add(env);
        }
        candidates.Add(Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "clipsharp"));
        foreach (var c in candidates)
        {
            var t = Probe(c);
            if (t is not null) return t;
        }
        return ClipTokenizer.BuiltIn;
    }

    /// <summary>
    /// The vocabulary a checkpoint declares: the built-in one, or its files (same names, same SHA-256) in the
    /// checkpoint's folder or the one above it.
    /// </summary>
    static ClipTokenizer Declared(VocabularyRecord declared, string checkpointPath, string? checkpointDir)
    {
        if (declared.IsBuiltIn) return ClipTokenizer.BuiltIn;
        var notes = new List<string>();
        var dirs = new List<string>();
        if (checkpointDir is not null)
        {
            dirs.Add(checkpointDir);
            if (Path.GetDirectoryName(checkpointDir) is { } parent) dirs.Add(parent);
        }
        foreach (var dir in dirs)
        {
            var paths = declared.Files.Select(f => Path.Combine(dir, f.Name)).ToList();
            if (!paths.All(File.Exists)) continue;
            var mismatched = declared.Files.Zip(paths).Where(x => VocabularyFile.Of(x.First.Name, File.ReadAllBytes(x.Second)) != x.First).Select(x => x.Second).ToList();
            if (mismatched.Count > 0)
            {
                notes.Add($"{string.Join(", ", mismatched)} has other contents");
                continue;
            }
            return declared.Format == VocabularyRecord.BpeFormat ? ClipTokenizer.FromBpeFile(paths[0]) : ClipTokenizer.FromHuggingFace(paths[0], paths[1]);
        }
        throw new FileNotFoundException(
            $"{checkpointPath}: the model was trained with the vocabulary {declared}, which is not beside it " +
            $"(looked in {string.Join(" and ", dirs)}{(notes.Count > 0 ? "; " + string.Join("; ", notes) : "")}); give its path (--vocab)");
    }

    static ClipTokenizer? Probe(string path)
    {
        if (Directory.Exists(path))
        {
            var bpe = Path.Combine(path, BpeFileName);
            if (File.Exists(bpe)) return ClipTokenizer.FromBpeFile(bpe);
            var vocab = Path.Combine(path, "vocab.json");
            var merges = Path.Combine(path, "merges.txt");
            if (File.Exists(vocab) && File.Exists(merges)) return ClipTokenizer.FromHuggingFace(vocab, merges);
            return null;
        }
        if (!File.Exists(path)) return null;
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
        {
            var merges = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, "merges.txt");
            if (!File.Exists(merges)) throw new FileNotFoundException($"{path}: a Hugging Face vocab.json needs merges.txt beside it");
            return ClipTokenizer.FromHuggingFace(path, merges);
        }
        return ClipTokenizer.FromBpeFile(path);
    }

    /// <summary>
    /// Copies the tokenizer's vocabulary files into <paramref name="directory"/> under their own names, so that weights
    /// saved there (with the tokenizer's <see cref="ClipTokenizer.Vocabulary"/> in their metadata) find it. Nothing is
    /// copied for the built-in vocabulary or when the same file is already there; a file of that name with other contents
    /// is replaced. Each file is written under a temporary name and renamed. Returns the paths written.
    /// </summary>
    /// <exception cref="InvalidDataException">A source file changed since the tokenizer read it.</exception>
    public static IReadOnlyList<string> SaveBeside(ClipTokenizer tokenizer, string directory)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(directory);
        var written = new List<string>();
        if (tokenizer.Vocabulary.IsBuiltIn || tokenizer.SourcePaths.Count == 0) return written;
        Directory.CreateDirectory(directory);
        foreach (var (file, source) in tokenizer.Vocabulary.Files.Zip(tokenizer.SourcePaths))
        {
            string target = Path.GetFullPath(Path.Combine(directory, file.Name));
            if (File.Exists(target) && VocabularyFile.Of(file.Name, File.ReadAllBytes(target)) == file) continue;
            var bytes = File.ReadAllBytes(source);
            if (VocabularyFile.Of(file.Name, bytes) != file)
                throw new InvalidDataException($"{source}: changed since the tokenizer was loaded from it (SHA-256 differs)");
            string tmp = Path.Combine(Path.GetDirectoryName(target)!, string.Create(CultureInfo.InvariantCulture, $".{file.Name}.{Guid.NewGuid():N}.tmp"));
            try
            {
                File.WriteAllBytes(tmp, bytes);
                File.Move(tmp, target, overwrite: true);
            }
            finally
            {
                if (File.Exists(tmp)) File.Delete(tmp);
            }
            written.Add(target);
        }
        return written;
    }
}
