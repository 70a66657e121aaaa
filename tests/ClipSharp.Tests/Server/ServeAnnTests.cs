using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using System.Threading.Channels;
using ClipSharp.Search;
using ClipSharp.Server;
using ClipSharp.Tests.Evaluation;
using ClipSharp.Tests.Modeling;
using ClipSharp.Tests.Training;
using ClipSharp.Text;

namespace ClipSharp.Tests.Server;

/// <summary>
/// The approximate index beside an index file: clip serve uses it when it belongs to the index, answers as exact search
/// does, picks up a rebuilt one atomically, and falls back to exact search (saying so) when the file is stale;
/// </summary>
public class ServeAnnTests
{
    static void Shapes(string folder, int from, int count)
    {
        Directory.CreateDirectory(folder);
        for (int i = from; i < from + count; i++) File.WriteAllBytes(Path.Combine(folder, $"s{i:D2}.png"), SyntheticShapes.Png(i, 64));
    }

    static readonly AnnOptions Small = new() { Connectivity = 8, ExpansionAdd = 32, ExpansionSearch = 32 };

    static async Task<JsonElement> Health(HttpClient http) => (await ServeFixture.Json(await http.GetAsync("/health"))).GetProperty("indexes")[0];

    [Fact]
    public async Task TheServerSearchesTheApproximateIndexAndPicksUpARebuiltOne()
    {
        using var tmp = new TestData.TempDir();
        string folder = tmp["photos"], indexPath = Path.Combine(folder, "photos.index.safetensors"), annPath = ApproximateIndex.PathFor(indexPath);
        Shapes(folder, 0, 12);
        using var model = ModelParityTests.LoadGoldenModel("vit_small");
        var tokenizer = ClipTokenizer.FromBpeFile(ServeFixture.Vocab);
        using (var index = ImageIndex.Build(model, ImageIndex.ListFiles([folder]), out _, modelPath: ServeFixture.ModelPath))
        using (var ann = ApproximateIndex.Build(index, Small))
        {
            index.Save(indexPath);
            ann.Save(annPath);
        }
        byte[] firstAnn = File.ReadAllBytes(annPath);

        var log = new ConcurrentQueue<string>();
        await using var server = await ClipServer.StartAsync(new ServeOptions { Indexes = [indexPath], VocabPath = ServeFixture.Vocab, Port = 0, Log = log.Enqueue,
            DedupThreshold = 0.9999f }); // the untrained golden model finds many shapes alike; only exact copies count
        using var http = new HttpClient { BaseAddress = server.Address };
        var reloads = Channel.CreateUnbounded<long>();
        server.IndexReloaded += (_, generation) => reloads.Writer.TryWrite(generation);

        Assert.Equal("approximate", (await Health(http)).GetProperty("search").GetString());
        Assert.Contains(log, l => l.Contains("approximate search (photos.index.ann)", StringComparison.Ordinal));

        // The same answers as the library's exact search: paths, order and scores.
        using (var index = ImageIndex.Load(indexPath))
        using (var q = index.EmbedText(model, tokenizer, "a red circle"))
        {
            var exact = index.Search(q, 5);
            var page = await ServeFixture.Json(await http.GetAsync("/api/search?text=a%20red%20circle&k=5"));
            var results = page.GetProperty("results").EnumerateArray().ToList();
            Assert.Equal(exact.Select(h => Path.GetFileName(h.Path)), results.Select(r => r.GetProperty("path").GetString()));
            for (int i = 0; i < 5; i++) Assert.Equal(exact[i].Score, results[i].GetProperty("score").GetSingle(), 1e-5f);
            Assert.Equal(12, page.GetProperty("total").GetInt32());
            Assert.True(page.GetProperty("more").GetBoolean());
            // Paging and deduplication run on the graph's candidates too.
            var second = await ServeFixture.Json(await http.GetAsync("/api/search?text=a%20red%20circle&k=5&offset=5&dedup=true"));
            Assert.Equal(5, second.GetProperty("count").GetInt32());
        }

        // Rebuild: three more images; the index file and then the approximate index are renamed over the old ones.
        Shapes(folder, 12, 3);
        using (var previous = ImageIndex.Load(indexPath))
        using (var rebuilt = ImageIndex.Build(model, ImageIndex.ListFiles([folder]), out _, previous, ServeFixture.ModelPath))
        using (var ann = ApproximateIndex.Build(rebuilt, Small))
        {
            rebuilt.Save(indexPath);
            ann.Save(annPath);
        }
        // Each file's rename is a reload; wait (on reload events, bounded) for the generation that has both.
        JsonElement health = default;
        for (int i = 0; i < 10; i++)
        {
            await reloads.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromMinutes(2));
            health = await Health(http);
            if (health.GetProperty("images").GetInt32() == 15 && health.GetProperty("search").GetString() == "approximate") break;
        }
        Assert.Equal((15, "approximate"), (health.GetProperty("images").GetInt32(), health.GetProperty("search").GetString()));
        var all = await ServeFixture.Json(await http.GetAsync("/api/search?text=a%20shape&k=15"));
        Assert.Equal(15, all.GetProperty("count").GetInt32());

        // The first approximate index put back: built from other embeddings, so it is ignored (logged) and search is exact.
        File.WriteAllBytes(annPath + ".tmp", firstAnn);
        File.Move(annPath + ".tmp", annPath, overwrite: true);
        for (int i = 0; i < 10; i++)
        {
            await reloads.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromMinutes(2));
            health = await Health(http);
            if (health.GetProperty("search").GetString() == "exact") break;
        }
        Assert.Equal((15, "exact"), (health.GetProperty("images").GetInt32(), health.GetProperty("search").GetString()));
        Assert.Contains(log, l => l.Contains(annPath, StringComparison.Ordinal) && l.Contains("searching exactly", StringComparison.Ordinal));
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/api/search?text=a%20shape&k=3")).StatusCode);
    }

}

/// <summary>clip index --ann builds the approximate index and keeps it in step; clip search uses it, or says why not.</summary>
[Collection("console")]
public class ClipIndexAnnTests
{
    [Fact]
    public void ClipIndexAnnBuildsItClipSearchUsesItAndAStaleOneIsIgnored()
    {
        using var tmp = new TestData.TempDir();
        var root = TestData.ImageFolder(tmp["photos"], perClass: 2);
        string model = Golden.Path("models", "vit_small.safetensors"), index = Path.Combine(root, "photos.index.safetensors");
        string ann = ApproximateIndex.PathFor(index);

        var (code, output, err) = CliRunner.Run("index", root, "-m", model, "-o", index, "-q", "--ann", "--ann-connectivity", "8");
        Assert.True(code == 0, err);
        Assert.Contains("approximate index of 6 vectors (HNSW M=8", output);
        Assert.True(File.Exists(ann));

        string[] search = ["search", "-i", index, "--vocab", ServeFixture.Vocab, "-k", "3", "red", "--image", Path.Combine(root, "blue", "img1.png")];
        var (c1, viaAnn, e1) = CliRunner.Run(search);
        var (c2, exact, _) = CliRunner.Run([.. search, "--exact"]);
        Assert.Equal((0, 0), (c1, c2));
        Assert.Equal(exact, viaAnn);
        Assert.DoesNotContain("note", e1);

        // Unchanged: nothing to rebuild. A new image: the exact index changes and the approximate one follows without --ann.
        (code, output, _) = CliRunner.Run("index", root, "-m", model, "-o", index, "-q", "--ann", "--ann-connectivity", "8");
        Assert.Contains("approximate index up to date", output);
        byte[] stale = File.ReadAllBytes(ann);
        File.WriteAllBytes(Path.Combine(root, "blue", "img7.png"), TestData.Png(20, 20, 240, seed: 91));
        (code, output, err) = CliRunner.Run("index", root, "-m", model, "-o", index, "-q");
        Assert.True(code == 0, err);
        Assert.Contains("approximate index of 7 vectors", output);

        // A stale file (the 6-image one) beside the 7-image index: ignored with a note, exact results.
        File.WriteAllBytes(ann, stale);
        var (c3, withStale, e3) = CliRunner.Run(search);
        var (_, exact7, _) = CliRunner.Run([.. search, "--exact"]);
        Assert.Equal(0, c3);
        Assert.Contains($"clip: note: {ann} was built from other embeddings", e3);
        Assert.Contains("searching exactly", e3);
        Assert.Equal(exact7, withStale);
    }
}
