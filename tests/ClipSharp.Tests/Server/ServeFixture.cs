using System.Net.Http.Headers;
using System.Text.Json;
using ClipSharp.Modeling;
using ClipSharp.Search;
using ClipSharp.Server;
using ClipSharp.Tests.Modeling;
using ClipSharp.Tests.Training;

namespace ClipSharp.Tests.Server;

/// <summary>
/// A real Kestrel on a free loopback port (port 0, the bound address read back) serving an index of 32 synthetic
/// shapes (128 px, captioned "a red circle", …) embedded by the golden vit_small model, plus a second, smaller index.
/// The folder also holds what must never be served: a text file, a symbolic link to an image outside, a linked folder
/// pointing outside (both indexed, neither served), and an image outside the folder that the index lists by absolute path.
/// </summary>
public sealed class ServeFixture : IAsyncLifetime
{
    public static string ModelPath => Golden.Path("models", "vit_small.safetensors");
    public static string Vocab => Golden.Path("bpe_simple_vocab_16e6.txt.gz");

    readonly Evaluation.TestData.TempDir tmp = new();
    public string Root => tmp.Path;
    public string Folder => tmp["photos"];
    public string Secret => tmp["secret"];
    public string IndexPath => Path.Combine(Folder, "photos.index.safetensors");
    public string SecondIndexPath => Path.Combine(tmp["other"], "other.index.safetensors");
    public ClipServer Server { get; private set; } = null!;
    public HttpClient Http { get; private set; } = null!;
    public ClipModel Model { get; private set; } = null!;
    public const long UploadLimit = 1 << 20;

    /// <summary>The index files that are served (paths relative to the folder), with their captions.</summary>
    public Dictionary<string, string> Captions { get; } = [];

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Folder);
        Directory.CreateDirectory(Path.Combine(Folder, "shapes"));
        Directory.CreateDirectory(Secret);
        var lines = new List<string> { "image,caption" };
        for (int i = 0; i < SyntheticShapes.Count; i++)
        {
            string rel = $"shapes/shape{i:D2}.png";
            File.WriteAllBytes(Path.Combine(Folder, rel), SyntheticShapes.Png(i, 128));
            lines.Add($"{rel},{SyntheticShapes.Caption(i)}");
            Captions[rel] = SyntheticShapes.Caption(i);
        }
        // An exact duplicate, for deduplication.
        File.Copy(Path.Combine(Folder, "shapes/shape00.png"), Path.Combine(Folder, "shapes/copy-of-shape00.png"));
        File.WriteAllText(Path.Combine(Folder, "photos.captions.csv"), string.Join('\n', lines) + "\n");
        File.WriteAllText(Path.Combine(Folder, "notes.txt"), "not an image");
        File.WriteAllBytes(Path.Combine(Secret, "secret.png"), SyntheticShapes.Png(5, 64));
        File.CreateSymbolicLink(Path.Combine(Folder, "leak.png"), Path.Combine(Secret, "secret.png"));
        Directory.CreateSymbolicLink(Path.Combine(Folder, "linked"), Secret);

        Model = ModelParityTests.LoadGoldenModel("vit_small");
        var files = ImageIndex.ListFiles([Folder]).Append(Path.Combine(Secret, "secret.png")).ToList();
        using (var index = ImageIndex.Build(Model, files, out _, modelPath: ModelPath))
            index.Save(IndexPath);
        Directory.CreateDirectory(tmp["other"]);
        for (int i = 0; i < 4; i++) File.WriteAllBytes(Path.Combine(tmp["other"], $"o{i}.png"), SyntheticShapes.Png(i * 9, 96));
        using (var other = ImageIndex.Build(Model, ImageIndex.ListFiles([tmp["other"]]), out _, modelPath: ModelPath))
            other.Save(SecondIndexPath);

        Server = await ClipServer.StartAsync(Options());
        Http = new HttpClient { BaseAddress = Server.Address };
    }

    public ServeOptions Options(bool allowUrlFetch = false) => new()
    {
        Indexes = [IndexPath, SecondIndexPath],
        VocabPath = Vocab,
        Port = 0,
        MaxUploadBytes = UploadLimit,
        MaxImagePixels = 4_000_000,
        AllowUrlFetch = allowUrlFetch,
        DedupThreshold = 0.9999f, // the untrained golden model finds many shapes alike; only exact copies count here
    };

    public async Task DisposeAsync()
    {
        Http?.Dispose();
        if (Server is not null) await Server.DisposeAsync();
        Model?.Dispose();
        tmp.Dispose();
    }

    public static async Task<JsonElement> Json(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.Content.Headers.ContentType?.MediaType == "application/json", $"{(int)response.StatusCode}: {text}");
        return JsonDocument.Parse(text).RootElement;
    }

    public static MultipartFormDataContent Form(byte[]? image, params (string Name, string Value)[] fields)
    {
        var form = new MultipartFormDataContent();
        if (image is not null)
        {
            var part = new ByteArrayContent(image);
            part.Headers.ContentType = new MediaTypeHeaderValue("image/png");
            form.Add(part, "image", "query.png");
        }
        foreach (var (n, v) in fields) form.Add(new StringContent(v), n);
        return form;
    }

    public byte[] Shape(int i) => File.ReadAllBytes(Path.Combine(Folder, $"shapes/shape{i:D2}.png"));
}

[CollectionDefinition("serve")]
public sealed class ServeCollection : ICollectionFixture<ServeFixture>;
