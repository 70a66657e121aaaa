namespace ClipSharp.Data.Readers;

/// <summary>
/// The ImageFolder layout: <c>root/&lt;class&gt;/**/*.jpg</c>. Classes are the sub-directory names sorted with ordinal
/// comparison (as torchvision sorts them); images are sorted by path within each class. Files without an image
/// extension are ignored; images that fail to decode are skipped later, when features are extracted.
/// </summary>
public sealed class ImageFolderDataset : ILabeledImageDataset, IImageTextDataset
{
    readonly List<(string Path, int Label)> _files = [];

    /// <summary>Scans the folder.</summary>
    /// <param name="root">Directory with one sub-directory per class.</param>
    /// <param name="classNames">Optional display names; when given they must match the number of class folders
    /// (folder i, sorted, gets name i). Otherwise the folder names are used, with '_' shown as a space.</param>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="ClipSharpException">No class folders, or the class-name count does not match.</exception>
    public ImageFolderDataset(string root, IReadOnlyList<string>? classNames = null)
    {
        ArgumentNullException.ThrowIfNull(root);
        if (!Directory.Exists(root)) throw new DirectoryNotFoundException($"image folder not found: {root}");
        Root = root;
        var dirs = Directory.GetDirectories(root).Select(d => Path.GetFileName(d)!).Order(StringComparer.Ordinal).ToList();
        if (dirs.Count == 0) throw new ClipSharpException($"{root}: no class sub-directories (ImageFolder layout is root/<class>/<image>)");
        FolderNames = dirs;
        if (classNames is not null && classNames.Count != dirs.Count)
            throw new ClipSharpException($"{root}: {dirs.Count} class folders but {classNames.Count} class names were given");
        ClassNames = classNames ?? dirs.Select(d => d.Replace('_', ' ')).ToList();
        for (int c = 0; c < dirs.Count; c++)
            foreach (var f in DatasetFiles.ListImages(Path.Combine(root, dirs[c])))
                _files.Add((f, c));
    }

    /// <summary>The root directory.</summary>
    public string Root { get; }

    /// <inheritdoc/>
    public string Source => Root;

    /// <summary>Class folder names, sorted (index = label).</summary>
    public IReadOnlyList<string> FolderNames { get; }

    /// <inheritdoc/>
    public IReadOnlyList<string> ClassNames { get; }

    /// <inheritdoc/>
    public SkipLog Skipped { get; } = new();

    /// <summary>Number of image files found.</summary>
    public int Count => _files.Count;

    /// <inheritdoc/>
    public IEnumerable<LabeledImage> Images() => _files.Select(f => new LabeledImage(f.Path, f.Label, f.Path));

    /// <summary>Each image with its class name as the one caption.</summary>
    public IEnumerable<ImageTextSample> Pairs() => _files.Select(f => new ImageTextSample(f.Path, [ClassNames[f.Label]], f.Path));
}
