using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using ClipSharp.Checkpoints;
using ClipSharp.Modeling;
using ClipSharp.Training;
using ClipSharp.Training.Distributed;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Training;

/// <summary>
/// Data-parallel training over TCP, with the ranks as threads of this process: the collectives, the failure modes,
/// and the promise that W ranks with N/W pairs each compute the gradient (and the run) of one N-pair batch.
/// </summary>
[Collection("global generator")]
public class DataParallelTests : IDisposable
{
    readonly string root = Directory.CreateTempSubdirectory("clipsharp-ddp-").FullName;

    public void Dispose() { try { Directory.Delete(root, true); } catch (IOException) { } }

    static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    static DistributedSettings Settings(int rank, int world, int port, double timeoutSeconds = 60) =>
        new(rank, world, "127.0.0.1", port, TimeSpan.FromSeconds(timeoutSeconds));

    /// <summary>Runs <paramref name="body"/> as <paramref name="world"/> ranks on their own threads, each with a connected group.</summary>
    static T[] OnRanks<T>(int world, Func<ProcessGroup, T> body, string fingerprint = "run")
    {
        int port = FreePort();
        var tasks = Enumerable.Range(0, world).Select(r => Task.Factory.StartNew(() =>
        {
            using var g = ProcessGroup.Connect(Settings(r, world, port), fingerprint);
            return body(g);
        }, TaskCreationOptions.LongRunning)).ToArray();
        Assert.True(Task.WaitAll(tasks, TimeSpan.FromMinutes(3)), "ranks did not finish");
        return tasks.Select(t => t.Result).ToArray();
    }

    [Fact]
    public void CollectivesGiveEveryRankTheSameResult()
    {
        var results = OnRanks(3, g =>
        {
            var values = Enumerable.Range(0, 1000).Select(i => (float)(i * (g.Rank + 1)) + 0.25f).ToArray();
            g.AllReduceSum(values);
            var gathered = g.AllGather(BitConverter.GetBytes(100L + g.Rank));
            var payload = g.Broadcast(g.Rank == 0 ? [7, 8, 9] : null);
            g.Barrier();
            return (values, gathered, payload);
        });
        foreach (var (values, gathered, payload) in results)
        {
            for (int i = 0; i < 1000; i++) Assert.Equal(i * 6f + 0.75f, values[i]);
            Assert.Equal(new long[] { 100, 101, 102 }, MemoryMarshal.Cast<byte, long>(gathered.AsSpan()).ToArray());
            Assert.Equal(new byte[] { 7, 8, 9 }, payload);
        }
    }

    [Fact]
    public void StreamsLargerThanAChunkReachEveryRank()
    {
        var payload = new byte[40_000_003];
        new Random(3).NextBytes(payload);
        var received = OnRanks(3, g =>
        {
            if (g.Rank == 0) { using var src = new MemoryStream(payload); g.BroadcastStream(src, null); return payload; }
            using var dst = new MemoryStream();
            g.BroadcastStream(null, dst);
            return dst.ToArray();
        });
        Assert.All(received, r => Assert.True(r.AsSpan().SequenceEqual(payload)));
    }

    [Fact]
    public void RanksOfDifferentRunsRefuseToJoin()
    {
        int port = FreePort();
        var lead = Task.Run(() => ProcessGroup.Connect(Settings(0, 2, port), "config A"));
        var other = Task.Run(() => ProcessGroup.Connect(Settings(1, 2, port), "config B"));
        var e0 = Assert.Throws<AggregateException>(() => lead.Wait(TimeSpan.FromSeconds(30))).InnerException;
        var e1 = Assert.Throws<AggregateException>(() => other.Wait(TimeSpan.FromSeconds(30))).InnerException;
        Assert.IsType<DistributedException>(e0);
        Assert.Contains("fingerprints differ", e0!.Message);
        Assert.Contains("refused rank 1", e1!.Message);
    }

    [Fact]
    public void AMissingOrLostRankFailsTheOthersInsteadOfHanging()
    {
        // Nobody else ever connects: rank 0 gives up after its timeout and names the missing rank.
        var lonely = Assert.Throws<DistributedException>(() => ProcessGroup.Connect(Settings(0, 2, FreePort(), timeoutSeconds: 1), "run"));
        Assert.Contains("rank(s) 1 never connected", lonely.Message);

        // Rank 1 leaves after the first collective; rank 0's next one fails at once with the rank named.
        var errors = OnRanks(2, g =>
        {
            var v = new float[4];
            g.AllReduceSum(v);
            if (g.Rank == 1) return "";
            Thread.Sleep(200);
            var e = Assert.Throws<DistributedException>(() => g.AllReduceSum(v));
            return e.Message;
        });
        Assert.Contains("lost rank 1", errors[0]);
    }

    /// <summary>Gradients of every parameter after a whole-batch backward, by name.</summary>
    static Dictionary<string, Tensor> Gradients(ClipTrainer t) =>
        t.NamedParameters().Where(p => p.Parameter.grad is not null)
            .ToDictionary(p => p.Name, p => p.Parameter.grad!.detach().clone().DetachFromDisposeScope());

    [Theory]
    [InlineData(LossKind.Infonce, null)]
    [InlineData(LossKind.Infonce, 2)]
    [InlineData(LossKind.Sigmoid, null)]
    public void TwoRanksWithHalfABatchEachGiveTheWholeBatchGradient(LossKind loss, int? micro)
    {
        string init = Path.Combine(root, "init.safetensors");
        using (var m = TinyModels.Create(21)) m.Save(init);
        var (pixels, ids) = TinyModels.RandomBatch(8, seed: 9);

        Dictionary<string, Tensor> expected;
        double expectedLoss;
        using (var model = ClipModel.Load(init))
        using (var single = new ClipTrainer(model, TinyModels.Options(micro: micro, loss: loss)))
        {
            model.train();
            single.Optimizer.ZeroGrad();
            expectedLoss = single.LossAndBackward(pixels, ids);
            single.DataParallelGroup = null;
            expected = Gradients(single);
        }

        var perRank = OnRanks(2, g =>
        {
            using var model = ClipModel.Load(init);
            using var trainer = new ClipTrainer(model, TinyModels.Options(micro: micro, loss: loss)) { DataParallelGroup = new GradientReducer(g) };
            model.train();
            using var rows = tensor(Enumerable.Range(0, 4).Select(i => (long)(g.Rank + 2 * i)).ToArray());
            using var myPixels = pixels.index_select(0, rows);
            using var myIds = ids.index_select(0, rows);
            trainer.Optimizer.ZeroGrad();
            double l = trainer.LossAndBackward(myPixels, myIds);
            trainer.DataParallelGroup!.SumGradients(trainer.Optimizer.Parameters);
            return (Loss: l, Grads: Gradients(trainer));
        });

        foreach (var (l, grads) in perRank)
        {
            Assert.Equal(expectedLoss, l, 5);
            Assert.Equal(expected.Keys.Order(), grads.Keys.Order());
            foreach (var (name, g) in expected) TensorAssert.Relative(grads[name], g, 1e-5, $"{name} ({loss}, micro-batch {micro?.ToString() ?? "none"})");
        }
        foreach (var t in expected.Values.Concat(perRank.SelectMany(r => r.Grads.Values))) t.Dispose();
        pixels.Dispose();
        ids.Dispose();
    }

    TrainConfig Config(string dir, int steps) => RunTests.Config(dir, Path.Combine(root, "init.safetensors"), steps) with
    {
        Output = new OutputSection { Dir = dir, CheckpointEvery = 3, KeepLast = 2, EvalEvery = 0, LogEvery = 1 },
    };

    RunResult[] RunOnRanks(int world, string dir, int steps, string? resume = null, long? stopAfter = null)
    {
        int port = FreePort();
        var tasks = Enumerable.Range(0, world).Select(r => Task.Factory.StartNew(() =>
            new TrainingRun(Config(dir, steps), root, OverfitTests.Tokenizer, [RunTests.Shapes()], null)
            {
                Distributed = Settings(r, world, port),
            }.Run(resume, stopAfter), TaskCreationOptions.LongRunning)).ToArray();
        Assert.True(Task.WaitAll(tasks, TimeSpan.FromMinutes(5)), "ranks did not finish");
        return tasks.Select(t => t.Result).ToArray();
    }

    [Fact]
    public void RunsThatCannotBeExactOrWouldDesynchroniseAreRefused()
    {
        using (var m = TinyModels.Create(5)) m.Save(Path.Combine(root, "init.safetensors"));
        // A different checkpoint cadence would put the ranks in different collectives: refused at the handshake.
        int port = FreePort();
        var tasks = new[] { 3, 4 }.Select((every, r) => Task.Factory.StartNew(() =>
            new TrainingRun(Config(Path.Combine(root, $"cadence{r}"), 6) with
            {
                Output = new OutputSection { Dir = Path.Combine(root, $"cadence{r}"), CheckpointEvery = every, EvalEvery = 0 },
            }, root, OverfitTests.Tokenizer, [RunTests.Shapes()], null) { Distributed = Settings(r, 2, port, timeoutSeconds: 30) }.Run(),
            TaskCreationOptions.LongRunning)).ToArray();
        foreach (var t in tasks)
        {
            var e = Assert.Throws<AggregateException>(() => t.Wait(TimeSpan.FromMinutes(2))).InnerException!;
            Assert.IsType<DistributedException>(e);
        }

        // A micro-batch size is per process and must divide each process's share.
        var cfg = Config(Path.Combine(root, "micro"), 6) with { Data = Config(root, 6).Data with { MicroBatchSize = 8 } };
        var micro = Assert.Throws<ClipSharpException>(() =>
            new TrainingRun(cfg, root, OverfitTests.Tokenizer, [RunTests.Shapes()], null) { Distributed = Settings(0, 2, FreePort()) }.Run());
        Assert.Contains("each process's share", micro.Message);
    }

    [Fact]
    public void ASetUpFailureOnRankZeroReachesTheOtherRanksWithItsCause()
    {
        using (var m = TinyModels.Create(5)) m.Save(Path.Combine(root, "init.safetensors"));
        string dir = Path.Combine(root, "one-process");
        new TrainingRun(Config(dir, 6), root, OverfitTests.Tokenizer, [RunTests.Shapes()], null).Run(stopAfterStep: 3);
        // Resuming a one-process checkpoint with two ranks: rank 0 refuses it, and rank 1 learns why.
        int port = FreePort();
        var tasks = Enumerable.Range(0, 2).Select(r => Task.Factory.StartNew(() =>
            new TrainingRun(Config(dir, 6), root, OverfitTests.Tokenizer, [RunTests.Shapes()], null) { Distributed = Settings(r, 2, port) }.Run("latest"),
            TaskCreationOptions.LongRunning)).ToArray();
        var e0 = Assert.Throws<AggregateException>(() => tasks[0].Wait(TimeSpan.FromMinutes(2))).InnerException!;
        var e1 = Assert.Throws<AggregateException>(() => tasks[1].Wait(TimeSpan.FromMinutes(2))).InnerException!;
        Assert.IsType<ClipSharpException>(e0);
        Assert.Contains("resume it with 1", e0.Message);
        Assert.IsType<DistributedException>(e1);
        Assert.Contains("rank 0 stopped during set-up", e1.Message);
        Assert.Contains("resume it with 1", e1.Message);
    }

    [Fact]
    public void TwoRankRunMatchesTheSingleProcessRunAndResumes()
    {
        using (var m = TinyModels.Create(5)) m.Save(Path.Combine(root, "init.safetensors"));
        var single = new TrainingRun(Config(Path.Combine(root, "single"), 6), root, OverfitTests.Tokenizer, [RunTests.Shapes()], null).Run();

        var straight = RunOnRanks(2, Path.Combine(root, "ddp"), 6);
        Assert.NotNull(straight[0].FinalWeights);
        Assert.Null(straight[1].FinalWeights); // only rank 0 writes

        // Same global batches, same gradients up to summation order, so the same weights after six AdamW steps.
        using (var a = SafeTensors.Load(single.FinalWeights!))
        using (var b = SafeTensors.Load(straight[0].FinalWeights!))
            foreach (var k in a.Keys) TensorAssert.Absolute(b[k], a[k], 1e-5, $"{k}: 2 ranks vs 1 process");

        // Killed after step 3, resumed by both ranks: the same weights as the straight two-rank run.
        var first = RunOnRanks(2, Path.Combine(root, "ddp-resumed"), 6, stopAfter: 3);
        Assert.All(first, r => Assert.Equal(3, r.Steps));
        var resumed = RunOnRanks(2, Path.Combine(root, "ddp-resumed"), 6, resume: "latest");
        using (var a = SafeTensors.Load(straight[0].FinalWeights!))
        using (var b = SafeTensors.Load(resumed[0].FinalWeights!))
            foreach (var k in a.Keys) TensorAssert.Absolute(b[k], a[k], 1e-6, $"{k}: resumed 2-rank run");

        // A checkpoint knows how many processes wrote it.
        var e = Assert.Throws<ClipSharpException>(() =>
            new TrainingRun(Config(Path.Combine(root, "ddp-resumed"), 9), root, OverfitTests.Tokenizer, [RunTests.Shapes()], null).Run("latest"));
        Assert.Contains("resume it with 2", e.Message);
    }
}
