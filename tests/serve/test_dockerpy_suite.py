"""Cases of docker-py's own integration suite (tests/integration in docker/docker-py) that
passed on dockerd 20.10 and failed on `rongqi serve`, written afresh: each test names the
docker-py cases it mirrors. docs/serve.md ("docker-py's integration suite") has the run."""

from __future__ import annotations

import os
import time

import docker.errors
import docker.types
import pytest


def _api(serve, **kw):
    return serve.client(**kw).api


def test_kill_answers_once_the_container_ended_and_wait_sees_a_restarted_run(serve):
    # api_container_test.py KillTest::test_kill, ::test_kill_with_dict_instead_of_id,
    # models_containers_test.py ContainerTest::test_kill and ContainerCollectionTest::
    # test_list (kill, then remove without force): dockerd answers a SIGKILL once the
    # container is gone, so the inspect right after it says exited, 137.
    api = _api(serve, timeout=20)
    cid = api.create_container("busybox", ["sleep", "600"])["Id"]
    api.start(cid)
    api.kill(cid)
    state = api.inspect_container(cid)["State"]
    assert (state["Running"], state["Status"], state["ExitCode"]) == (False, "exited", 137)
    api.remove_container(cid)

    # CreateContainerTest::test_create_with_restart_policy: wait() on a container whose
    # policy restarts it answers at the end of the run (it hung: the monitor's exit frame
    # only comes after the last run), and the container is running again, so a remove
    # without force is refused in dockerd's words.
    cid = api.create_container("busybox", ["sleep", "1"], host_config=api.create_host_config(
        restart_policy={"Name": "always", "MaximumRetryCount": 0}, network_mode="none"))["Id"]
    api.start(cid)
    t0 = time.monotonic()
    assert api.wait(cid, timeout=15) == {"StatusCode": 0, "Error": None}
    assert time.monotonic() - t0 < 10
    with pytest.raises(docker.errors.APIError) as err:
        api.remove_container(cid)
    assert "You cannot remove " in err.value.explanation
    api.remove_container(cid, force=True)


def test_commit_of_a_container_that_just_ended(serve):
    # api_image_test.py CommitTest::test_commit, ::test_commit_with_changes and
    # RemoveImageTest::test_remove: start `touch /test` and commit at once (pause=True).
    # The record still said running while the process had ended, the pause failed and the
    # commit answered 404 "container ... does not exist".
    api = _api(serve)
    for _ in range(3):
        cid = api.create_container("busybox", ["touch", "/test"])["Id"]
        api.start(cid)
        image = api.commit(cid, changes=["EXPOSE 8000", 'CMD ["bash"]'])["Id"]
        conf = api.inspect_image(image)["Config"]
        assert "8000/tcp" in conf["ExposedPorts"] and conf["Cmd"] == ["bash"]
        api.remove_container(cid, force=True)
        assert {"Deleted": image} in api.remove_image(image, force=True)


def test_swarm_routes_answer_as_a_daemon_outside_a_swarm(serve):
    # api_network_test.py TestNetworks.tearDown calls leave_swarm(force=True) after every
    # network test: docker-py takes dockerd's 503 as "not in a swarm"; a 404 "page not
    # found" raised NotFound and failed all 26 of them.
    api = _api(serve)
    assert api.leave_swarm(force=True) is True
    with pytest.raises(docker.errors.APIError) as err:
        api.inspect_swarm()
    assert err.value.response.status_code == 503
    assert err.value.explanation.startswith("This node is not a swarm manager.")
    p = serve.docker("node", "ls", check=False)
    assert p.returncode == 1
    assert "Error response from daemon: This node is not a swarm manager." in p.stderr
    p = serve.docker("swarm", "init", check=False)
    assert p.returncode == 1 and "rongqi has no swarm mode" in p.stderr


def test_exec_that_cannot_start_is_dockerd_126(serve):
    # models_containers_test.py ContainerTest::test_exec_run_failed: exec_run of a command
    # that does not exist is ExitCode 126, dockerd's code for any exec that cannot start
    # (the engine's parent records podman's 127).
    client = serve.client()
    c = client.containers.run("busybox", "sleep 60", detach=True)
    code, out = c.exec_run("docker ps")
    assert code == 126 and b"docker" in out
    api = client.api
    eid = api.exec_create(c.id, ["nosuch-command"])["Id"]
    with pytest.raises(docker.errors.APIError) as err:
        api.exec_start(eid, detach=True)
    assert err.value.response.status_code == 400
    assert api.exec_inspect(eid)["ExitCode"] == 126
    assert c.exec_run("sh -c 'exit 3'")[0] == 3          # a started command keeps its own
    c.remove(force=True)


def test_build_applies_dockerignore_exceptions_and_refuses_an_empty_dockerfile(serve, tmp_path):
    # api_build_test.py BuildTest::test_build_with_dockerignore: `ignored` with
    # `!ignored/subdir/excepted-file` keeps that file (the excluded directory was left out
    # whole); regression_test.py ::test_443_handle_nonchunked_response_in_stream: an empty
    # Dockerfile is dockerd's 400 before the stream, which docker-py raises.
    import io
    ctx = tmp_path / "ctx"
    (ctx / "ignored" / "subdir").mkdir(parents=True)
    (ctx / "Dockerfile").write_text("FROM busybox\nADD . /test\n")
    (ctx / ".dockerignore").write_text("ignored\nDockerfile\n.dockerignore\n"
                                       "!ignored/subdir/excepted-file\n")
    for rel in ("not-ignored", "ignored/subdir/file", "ignored/subdir/excepted-file"):
        (ctx / rel).write_text("x")
    api = _api(serve)
    lines = list(api.build(path=str(ctx), tag="ign:1", decode=True))
    assert "Successfully tagged ign:1\n" in [x.get("stream") for x in lines], lines
    out = serve.client().containers.run("ign:1", ["find", "/test", "-type", "f"], remove=True)
    assert sorted(out.decode().split()) == ["/test/ignored/subdir/excepted-file",
                                           "/test/not-ignored"]
    with pytest.raises(docker.errors.APIError) as err:
        list(api.build(fileobj=io.BytesIO(b""), tag="a/b/c"))
    assert err.value.response.status_code == 400
    assert err.value.explanation == "the Dockerfile (Dockerfile) cannot be empty"


@pytest.mark.root
@pytest.mark.skipif(not os.access("/usr/lib/podman/netavark", os.X_OK),
                    reason="netavark is not installed")
def test_a_static_address_shows_in_ipamconfig_and_info_counts_every_image(serve):
    # api_network_test.py TestNetworks::test_create_with_ipv4_address and
    # ::test_connect_with_ipv4_address: the endpoint's IPAMConfig is the address asked for
    # (it was null); api_image_test.py ListImagesTest::test_images: /info's Images is the
    # number of ids images(all=True) lists.
    from support.serving import session_network
    name, subnet, bridge = session_network(41)
    api = _api(serve)
    ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
    api.create_network(name, ipam=ipam, options={"com.docker.network.bridge.name": bridge})
    ip, ip2 = subnet.replace(".0/24", ".23"), subnet.replace(".0/24", ".24")
    cid = api.create_container(
        "busybox", "top", host_config=api.create_host_config(network_mode=name),
        networking_config=api.create_networking_config(
            {name: api.create_endpoint_config(ipv4_address=ip)}))["Id"]
    api.start(cid)
    ep = api.inspect_container(cid)["NetworkSettings"]["Networks"][name]
    assert (ep["IPAMConfig"], ep["IPAddress"]) == ({"IPv4Address": ip}, ip)
    api.disconnect_container_from_network(cid, name)
    api.connect_container_to_network(cid, name, ipv4_address=ip2)
    ep = api.inspect_container(cid)["NetworkSettings"]["Networks"][name]
    assert (ep["IPAMConfig"], ep["IPAddress"]) == ({"IPv4Address": ip2}, ip2)
    api.disconnect_container_from_network(cid, name)
    api.connect_container_to_network(cid, name)                 # none asked: null, as Docker
    assert api.inspect_container(cid)["NetworkSettings"]["Networks"][name]["IPAMConfig"] is None
    api.remove_container(cid, force=True)
    api.commit(api.create_container("busybox", "true")["Id"])     # an unnamed image too
    assert len({i["Id"] for i in api.images(all=True)}) == api.info()["Images"]


def test_volumes_from_isolation_and_volume_driver(serve, tmp_path):
    # api_container_test.py CreateContainerTest::test_create_container_with_volumes_from and
    # ::test_create_with_isolation, models_containers_test.py ContainerTest::
    # test_create_with_volume_driver: all three were a 400 "... is not supported by rongqi"
    # or shown back empty.
    api = _api(serve)
    src = api.create_container("busybox", ["sh", "-c", "echo hi > /data/f"], volumes=["/data"],
                               name="vsrc")["Id"]
    api.start(src)
    assert api.wait(src)["StatusCode"] == 0
    vol = api.inspect_container(src)["Mounts"][0]["Name"]
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "g").write_text("bound\n")
    api.create_container("busybox", "true", name="vsrc2", host_config=api.create_host_config(
        binds={str(tmp_path / "b"): {"bind": "/b", "mode": "ro"}}))
    cid = api.create_container(
        "busybox", ["sh", "-c", "cat /data/f /b/g; touch /data/x && echo rw; "
                    "touch /b/y 2>/dev/null || echo ro"],
        host_config=api.create_host_config(volumes_from=["vsrc", "vsrc2"],
                                           isolation="default"))["Id"]
    hc = api.inspect_container(cid)["HostConfig"]
    assert (hc["VolumesFrom"], hc["Isolation"]) == (["vsrc", "vsrc2"], "default")
    api.start(cid)
    assert api.wait(cid)["StatusCode"] == 0
    assert api.logs(cid) == b"hi\nbound\nrw\nro\n"
    api.remove_container(cid, v=True)
    assert api.inspect_volume(vol)["Name"] == vol        # still its owner's
    cid = api.create_container("busybox", "true",
                               host_config=api.create_host_config(volume_driver="foo"))["Id"]
    assert api.inspect_container(cid)["HostConfig"]["VolumeDriver"] == "foo"
    with pytest.raises(docker.errors.APIError) as err:
        api.create_container("busybox", "true", volumes=["/v"],
                             host_config=api.create_host_config(volume_driver="foo"))
    assert 'error looking up volume plugin foo: plugin "foo" not found' in err.value.explanation
